"""Model scanner benchmark: tsuba against ModelScan, picklescan and ModelAudit, side by side.

Generates a corpus under a temporary folder: benign files made by the real libraries (torch,
numpy, safetensors, scikit-learn/joblib, onnx when installed) and one malicious file per
published technique (tests/models/scan/advisories/catalog.py).  Reports, per tool, the
detections per technique group and the false positives, then MB/s on three large files (a
PyTorch checkpoint, a safetensors file, a plain pickle of numpy arrays; 1 GB each, 64 MB with
--quick), peers timed through their command line net of their start-up time.

    python bench/scan.py --quick            # seconds to a few minutes
    python bench/scan.py                    # 1 GB files
    python bench/scan.py --peers-bin /venv/bin   # where modelscan/picklescan/modelaudit live

Writes bench/results/scan.json and prints a short table.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import pickle
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "models" / "scan"))

from advisories.catalog import CASES  # noqa: E402

from tsuba.models.scan import scan_path  # noqa: E402

PEERS = {
    "picklescan": lambda p: ["picklescan", "--path", str(p)],
    "modelscan": lambda p: ["modelscan", "--path", str(p)],
    "modelaudit": lambda p: ["modelaudit", "scan", str(p)],
}


def group_of(advisory: str) -> str:
    a = advisory.lower()
    for key, group in (
        ("nullifai (7z)", "7z-compressed model"), ("nullifai", "payload then broken stream"),
        ("keyerror", "payload then broken stream"), ("type-confusion", "payload then broken "
                                                     "stream"),
        ("cve-2025-1944", "zip reader mismatch"), ("cve-2025-1945", "zip reader mismatch"),
        ("cve-2025-10156", "zip reader mismatch"), ("cve-2025-1889", "pickle under another "
                                                    "name"),
        ("10155", "pickle under another name"), ("10157", "submodule of a blocked module"),
        ("picklescan#22", "memo and operand tricks"), ("9gvj", "memo and operand tricks"),
        ("stack_global", "memo and operand tricks"), ("malicious10", "INST/OBJ opcodes"),
        ("obj opcode", "INST/OBJ opcodes"), ("sour", "protocol 0 classics"),
        ("malicious19", "wrapped callables"), ("84r2", "wrapped callables"),
        ("955r", "wrapped callables"), ("46h3", "wrapped callables"),
        ("malicious13", "nested pickle"), ("malicious6", "concatenated pickles"),
        ("magic bypass", "legacy torch magic"), ("cve-2024-3660", "keras"),
        ("cve-2025-1550", "keras"), ("cve-2025-8747", "keras"), ("34359", "gguf template"),
        ("27318", "onnx external data"), ("5187", "tar traversal"),
        ("torch", "torch internals gadgets"), ("modelscan#338", "third-party gadgets"),
        ("ghsa-", "stdlib gadgets"),
    ):
        if key in a:
            return group
    return "stdlib gadgets"


def build_corpus(root: Path, quick: bool) -> tuple[list[tuple[Path, str]], list[Path]]:
    mal_dir, ben_dir = root / "malicious", root / "benign"
    mal_dir.mkdir(parents=True)
    ben_dir.mkdir(parents=True)
    malicious: list[tuple[Path, str]] = []
    seen: set[str] = set()
    for i, case in enumerate(CASES):
        group = group_of(case.advisory)
        if quick and group in seen:
            continue
        seen.add(group)
        path = mal_dir / f"{i:03d}_{case.name}"
        path.write_bytes(case.build())
        malicious.append((path, group))
    benign: list[Path] = []

    def put(name: str, data: bytes) -> None:
        (ben_dir / name).write_bytes(data)
        benign.append(ben_dir / name)

    import numpy as np  # noqa: PLC0415 (optional library)

    put("arrays.pkl", pickle.dumps({"a": np.arange(1000.0), "b": np.ones((4, 4))}, protocol=4))
    buf = io.BytesIO()
    np.save(buf, np.arange(100, dtype=np.int32))
    put("array.npy", buf.getvalue())
    buf = io.BytesIO()
    np.savez(buf, a=np.arange(10), b=np.zeros(3))
    put("arrays.npz", buf.getvalue())
    try:
        import torch  # noqa: PLC0415 (optional library)

        net = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
        for name, kw in (("state_dict.pt", {}),
                         ("legacy.pt", {"_use_new_zipfile_serialization": False})):
            buf = io.BytesIO()
            torch.save(net.state_dict(), buf, **kw)
            put(name, buf.getvalue())
        buf = io.BytesIO()
        torch.save(net, buf)
        put("full_module.pt", buf.getvalue())
    except ImportError:
        pass
    try:
        from safetensors.numpy import save  # noqa: PLC0415 (optional library)

        put("model.safetensors", save({"w": np.zeros((8, 8), dtype=np.float32)}))
    except ImportError:
        pass
    try:
        import joblib  # noqa: PLC0415 (optional library)
        from sklearn.ensemble import RandomForestClassifier  # noqa: PLC0415 (optional library)
        from sklearn.linear_model import LogisticRegression  # noqa: PLC0415 (optional library)

        x = np.random.default_rng(0).random((60, 4))
        y = (x[:, 0] > 0.5).astype(int)
        for name, model in (("logreg.joblib", LogisticRegression().fit(x, y)),
                            ("forest.joblib", RandomForestClassifier(n_estimators=4).fit(x, y))):
            joblib.dump(model, ben_dir / name)
            benign.append(ben_dir / name)
        joblib.dump(LogisticRegression().fit(x, y), ben_dir / "logreg_z.joblib", compress=3)
        benign.append(ben_dir / "logreg_z.joblib")
        put("logreg.pkl", pickle.dumps(LogisticRegression().fit(x, y), protocol=5))
    except ImportError:
        pass
    try:
        from onnx import TensorProto, helper  # noqa: PLC0415 (optional library)

        node = helper.make_node("Relu", ["x"], ["y"])
        graph = helper.make_graph(
            [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
        put("model.onnx", helper.make_model(graph).SerializeToString())
    except ImportError:
        pass
    return malicious, benign


def build_large(root: Path, size: int) -> dict[str, Path]:
    import numpy as np  # noqa: PLC0415 (optional library)

    root.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    chunk = 16 << 20
    n = max(1, size // chunk)
    arrays = {f"layer{i}": np.random.default_rng(i).random(chunk // 8) for i in range(n)}
    out["plain pickle of numpy arrays"] = root / "arrays_large.pkl"
    with open(out["plain pickle of numpy arrays"], "wb") as fh:
        pickle.dump(arrays, fh, protocol=4)
    try:
        from safetensors.numpy import save_file  # noqa: PLC0415 (optional library)

        out["safetensors"] = root / "large.safetensors"
        save_file(arrays, str(out["safetensors"]))
    except ImportError:
        pass
    try:
        import torch  # noqa: PLC0415 (optional library)

        out["pytorch checkpoint"] = root / "large.pt"
        torch.save({k: torch.from_numpy(v) for k, v in arrays.items()}, out["pytorch checkpoint"])
    except ImportError:
        pass
    return out


def tsuba_flags(path: Path) -> bool:
    return scan_path(path).unsafe()


def peer_flags(cmd: list[str]) -> tuple[bool, int]:
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=300, check=False)
    except subprocess.TimeoutExpired:
        return True, -1
    return proc.returncode != 0, proc.returncode


def timed(fn, repeat: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="64 MB files, one case per group")
    ap.add_argument("--peers-bin", type=Path, help="folder holding the peer command lines")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "scan.json")
    args = ap.parse_args()
    if args.peers_bin:
        os.environ["PATH"] = f"{args.peers_bin}{os.pathsep}{os.environ['PATH']}"
    peers = {name: cmd for name, cmd in PEERS.items() if shutil.which(cmd(Path("x"))[0])}
    size = (64 << 20) if args.quick else (1 << 30)
    with tempfile.TemporaryDirectory(prefix="tsuba-scan-bench-") as tmp:
        root = Path(tmp)
        malicious, benign = build_corpus(root / "corpus", args.quick)
        tools = ["tsuba", *peers]
        caught: dict[str, dict[str, list[int]]] = {t: defaultdict(lambda: [0, 0]) for t in tools}
        false_pos: dict[str, list[str]] = {t: [] for t in tools}
        for path, group in malicious:
            for tool in tools:
                hit = tsuba_flags(path) if tool == "tsuba" else peer_flags(peers[tool](path))[0]
                caught[tool][group][0] += int(hit)
                caught[tool][group][1] += 1
        for path in benign:
            for tool in tools:
                hit = tsuba_flags(path) if tool == "tsuba" else peer_flags(peers[tool](path))[0]
                if hit:
                    false_pos[tool].append(path.name)
        large = build_large(root / "large", size)
        tiny = benign[0]
        startup = {t: timed(lambda t=t: peer_flags(peers[t](tiny)), 2) for t in peers}
        speed: dict[str, dict[str, float]] = {}
        for label, path in large.items():
            nbytes = path.stat().st_size
            scan_path(path)  # warm the page cache
            row = {"tsuba": nbytes / timed(lambda p=path: scan_path(p), 3) / 1e6}
            for tool in peers:
                secs = timed(lambda t=tool, p=path: peer_flags(peers[t](p)), 2) - startup[tool]
                row[tool] = nbytes / max(secs, 1e-3) / 1e6
            speed[label] = {k: round(v, 1) for k, v in row.items()}
            speed[label]["size_mb"] = round(nbytes / 1e6, 1)
    result = {
        "benchmark": "model scanner",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {os.cpu_count()} cores, {platform.python_version()}",
        "mode": "quick" if args.quick else "full",
        "peers_found": sorted(peers),
        "malicious_files": len(malicious),
        "benign_files": len(benign),
        "detections": {t: {g: {"caught": c, "total": n} for g, (c, n) in sorted(v.items())}
                       for t, v in caught.items()},
        "detection_rate": {t: round(sum(c for c, _ in v.values()) /
                                    max(1, sum(n for _, n in v.values())), 3)
                           for t, v in caught.items()},
        "false_positives": {t: {"count": len(v), "of": len(benign), "files": v}
                            for t, v in false_pos.items()},
        "throughput_mb_s": speed,
        "peer_startup_s": {t: round(s, 3) for t, s in startup.items()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'tool':<12} {'detected':>9} {'false pos':>10}  " +
          "  ".join(f"{k[:22]:>22}" for k in speed))
    for tool in result["detection_rate"]:
        fp = result["false_positives"][tool]
        print(f"{tool:<12} {result['detection_rate'][tool]:>9.0%} "
              f"{fp['count']:>4}/{fp['of']:<5}  " +
              "  ".join(f"{speed[k].get(tool, 0):>17.0f} MB/s" for k in speed))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
