"""Gateway: what tsuba adds to an inference request, side by side with calling the upstream
directly and (when installed) with the LiteLLM proxy in front of the same upstream.

Every server is a separate process: the demo upstream (``python -m tsuba.gateway.demo``),
``tsuba up`` (one worker, API key authentication, per-principal limits, model
authorization, audit record per request) in four set-ups (audit durable or async, with or
without an output/input word guard), and ``litellm --config`` (its master key only: its
per-key limits need its own PostgreSQL, so it does less per request than tsuba).

Figures per set-up:
- ``latency``: sequential non-streaming chat completions with a 1 KiB prompt, p50 and p99,
  and the same minus the direct figures (``added_*``);
- ``stream``: sequential streamed completions from an upstream that pauses 2 ms between
  words: time to first token (TTFT) p50/p99 and what the gateway adds to it (the guarded
  windows hold text back until a guard has seen it);
- ``throughput``: requests/s with ``--concurrency`` clients on keep-alive connections;
- ``fsync_before``/``fsync_after``: the disk's fsync latency around the tsuba runs: the
  durable set-ups wait for one commit per audit batch, so they move with it.

    python bench/gateway.py --quick     # a few seconds per set-up
    python bench/gateway.py             # full sizes
    python bench/gateway.py --litellm /path/to/venv/bin/litellm

Figures go to bench/results/gateway.json.  On a shared machine they are provisional.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

RESULTS = Path(__file__).parent / "results" / "gateway.json"
PROMPT = "x" * 1024
BODY = json.dumps({"model": "demo", "messages": [{"role": "user", "content": PROMPT}],
                   "max_tokens": 16}).encode()
STREAM_BODY = json.dumps({"model": "demo", "stream": True, "max_tokens": 16,
                          "messages": [{"role": "user", "content": "tell me a short story"}]
                          }).encode()
GUARDS = [{"name": "bench-word", "kind": "word", "stage": "both", "action": "block",
           "options": {"words": ["zorblax", "forbidden-word"]}}]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            if proc.poll() is not None or time.monotonic() > deadline:
                out = proc.stdout.read().decode() if proc.stdout else ""
                raise SystemExit(f"server did not start: {url}\n{out[-2000:]}") from None
            time.sleep(0.1)


@contextmanager
def process(args: list[str], ready: str, env: dict[str, str] | None = None
            ) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_ready(ready, proc)
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def ms(value: float) -> float:
    return round(value * 1000, 3)


# -- measurements --------------------------------------------------------------------------


def fsync_latency(directory: Path, n: int = 100) -> dict[str, float]:
    """What one durable commit waits for on this disk (durable audit costs one per batch)."""
    fd, name = tempfile.mkstemp(dir=directory)
    times = []
    try:
        for _ in range(n):
            os.write(fd, b"x" * 4096)
            start = time.perf_counter()
            os.fsync(fd)
            times.append(time.perf_counter() - start)
            time.sleep(0.001)
    finally:
        os.close(fd)
        os.unlink(name)
    return {"p50_ms": ms(pct(times, 0.5)), "p99_ms": ms(pct(times, 0.99))}


def latency(url: str, headers: dict[str, str], n: int) -> dict[str, float]:
    with httpx.Client(timeout=30) as client:
        for _ in range(max(20, n // 10)):
            client.post(url, content=BODY, headers=headers).raise_for_status()
        times = []
        for _ in range(n):
            start = time.perf_counter()
            client.post(url, content=BODY, headers=headers).raise_for_status()
            times.append(time.perf_counter() - start)
    return {"p50_ms": ms(pct(times, 0.5)), "p99_ms": ms(pct(times, 0.99)), "n": n}


def stream(url: str, headers: dict[str, str], n: int) -> dict[str, float]:
    ttft, total = [], []
    with httpx.Client(timeout=30) as client:
        for i in range(n + 5):
            start = time.perf_counter()
            first = None
            with client.stream("POST", url, content=STREAM_BODY, headers=headers) as resp:
                resp.raise_for_status()
                for line in resp.iter_lines():
                    if first is None and '"content":"' in line and '"content":""' not in line:
                        first = time.perf_counter() - start
            if i >= 5 and first is not None:
                ttft.append(first)
                total.append(time.perf_counter() - start)
    return {"ttft_p50_ms": ms(pct(ttft, 0.5)), "ttft_p99_ms": ms(pct(ttft, 0.99)),
            "total_p50_ms": ms(pct(total, 0.5)), "n": n}


async def _load(host: str, port: int, path: str, headers: dict[str, str], seconds: float,
                concurrency: int) -> tuple[int, int]:
    """Raw HTTP/1.1 keep-alive clients (cheap, so the client is not what is measured)."""
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    request = (f"POST {path} HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n"
               f"{head}content-length: {len(BODY)}\r\n\r\n").encode() + BODY
    done = [0, 0]
    stop = time.monotonic() + seconds

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        while time.monotonic() < stop:
            writer.write(request)
            status_line = await reader.readline()
            length = 0
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            done[0 if status_line.split()[1] == b"200" else 1] += 1
        writer.close()

    await asyncio.gather(*[worker() for _ in range(concurrency)])
    return done[0], done[1]


def throughput(url: str, headers: dict[str, str], seconds: float, concurrency: int
               ) -> dict[str, float]:
    parts = httpx.URL(url)
    asyncio.run(_load(parts.host, parts.port or 80, parts.raw_path.decode(), headers, 1.0,
                      concurrency))
    ok, failed = asyncio.run(_load(parts.host, parts.port or 80, parts.raw_path.decode(),
                                   headers, seconds, concurrency))
    return {"requests_per_s": round(ok / seconds, 1), "non_200": failed,
            "concurrency": concurrency}


def measure(name: str, base: str, headers: dict[str, str], stream_base: str | None,
            args: argparse.Namespace) -> dict[str, Any]:
    url = base + "/chat/completions"
    out: dict[str, Any] = {"latency": latency(url, headers, args.n)}
    if stream_base is not None:
        out["stream"] = stream(stream_base + "/chat/completions", headers, args.n_stream)
    out["throughput"] = throughput(url, headers, args.seconds, args.concurrency)
    print(f"  {name:<34} p50 {out['latency']['p50_ms']:7.3f} ms  p99 "
          f"{out['latency']['p99_ms']:7.3f} ms  "
          + (f"ttft {out['stream']['ttft_p50_ms']:7.3f} ms  " if "stream" in out else "")
          + f"{out['throughput']['requests_per_s']:8.1f} req/s", flush=True)
    return out


# -- set-ups -------------------------------------------------------------------------------


def prepare_home(home: Path) -> str:
    """A data directory with principal 'bench' (may invoke model/demo) and its API key."""
    from tsuba.core.config import load_settings  # noqa: PLC0415 - after TSUBA_* is cleaned
    from tsuba.core.home import init_home  # noqa: PLC0415
    from tsuba.core.identity import IdentityService  # noqa: PLC0415
    from tsuba.core.platform import Platform  # noqa: PLC0415
    from tsuba.gateway.auth import create_api_key  # noqa: PLC0415

    init_home(home)
    with Platform.open(load_settings(home)) as p:
        with IdentityService(p.engine) as ids:
            ids.create_principal("bench", "service")
            ids.create_role("bench")
            ids.add_permission("bench", "model:invoke", "model/demo")
            ids.bind("bench", "bench")
        key, _ = create_api_key(p.engine, "bench", keys=p.keys)
    return key


def tsuba_env(home: Path, upstream_port: int, *, durability: str, guards: bool,
              stream_port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TSUBA_")}
    upstreams = {
        "demo": {"base_url": f"http://127.0.0.1:{upstream_port}/v1"},
        "slow": {"base_url": f"http://127.0.0.1:{stream_port}/v1"},
    }
    env.update({
        "TSUBA_HOME": str(home),
        "TSUBA_LOG_LEVEL": "warning",
        "TSUBA_AUDIT__DURABILITY": durability,
        "TSUBA_GATEWAY__UPSTREAMS": json.dumps(upstreams),
        "TSUBA_GATEWAY__MODELS": json.dumps({"demo": {"upstream": "demo"}}),
        "TSUBA_GATEWAY__ALLOWED_UPSTREAM_HOSTS": json.dumps(
            [f"127.0.0.1:{upstream_port}", f"127.0.0.1:{stream_port}"]),
        # Limits on, generous enough that the benchmark never meets them.
        "TSUBA_GATEWAY__LIMITS__PRINCIPAL_DEFAULTS": json.dumps(
            {"requests": 10_000_000, "interval_seconds": 60, "tokens_per_minute": 10**12,
             "concurrent": 10_000}),
        "TSUBA_GATEWAY__GUARDS": json.dumps(GUARDS if guards else []),
    })
    return env


def run_tsuba(name: str, home: Path, key: str, ports: dict[str, int], args: argparse.Namespace,
              *, durability: str, guards: bool) -> dict[str, Any]:
    port = free_port()
    env = tsuba_env(home, ports["upstream"], durability=durability, guards=guards,
                    stream_port=ports["stream"])
    cmd = [sys.executable, "-m", "tsuba.cli.main", "up", "--port", str(port)]
    with process(cmd, f"http://127.0.0.1:{port}/healthz", env):
        base = f"http://127.0.0.1:{port}/v1"
        headers = {"authorization": f"Bearer {key}"}
        result = measure(name, base, headers, None, args)
    # Streams go to the slow upstream: the same gateway, with 'demo' served by it.
    env["TSUBA_GATEWAY__UPSTREAMS"] = json.dumps(
        {"demo": {"base_url": f"http://127.0.0.1:{ports['stream']}/v1"}})
    env["TSUBA_GATEWAY__ALLOWED_UPSTREAM_HOSTS"] = json.dumps([f"127.0.0.1:{ports['stream']}"])
    with process(cmd, f"http://127.0.0.1:{port}/healthz", env):
        base = f"http://127.0.0.1:{port}/v1"
        result["stream"] = stream(base + "/chat/completions",
                                  {"authorization": f"Bearer {key}"}, args.n_stream)
    print(f"  {'':<34} ttft p50 {result['stream']['ttft_p50_ms']:7.3f} ms", flush=True)
    return result


def run_litellm(binary: str, ports: dict[str, int], args: argparse.Namespace, tmp: Path
                ) -> dict[str, Any] | str:
    results: dict[str, Any] = {}
    for label, upstream in (("plain", ports["upstream"]), ("stream", ports["stream"])):
        config = tmp / f"litellm-{label}.yaml"
        config.write_text(
            "model_list:\n"
            "  - model_name: demo\n"
            "    litellm_params:\n"
            "      model: openai/demo\n"
            f"      api_base: http://127.0.0.1:{upstream}/v1\n"
            "      api_key: none\n"
            "general_settings:\n"
            "  master_key: sk-bench-master\n"
            "litellm_settings:\n"
            "  drop_params: true\n"
        )
        port = free_port()
        env = {**os.environ, "LITELLM_LOG": "ERROR"}
        cmd = [binary, "--config", str(config), "--port", str(port), "--num_workers", "1"]
        try:
            with process(cmd, f"http://127.0.0.1:{port}/health/liveliness", env):
                headers = {"authorization": "Bearer sk-bench-master"}
                base = f"http://127.0.0.1:{port}/v1"
                if label == "plain":
                    results.update(measure("litellm proxy (master key)", base, headers, None,
                                           args))
                else:
                    results["stream"] = stream(base + "/chat/completions", headers,
                                               args.n_stream)
        except SystemExit as exc:
            return f"litellm did not start: {str(exc)[:300]}"
    return results


def added(result: dict[str, Any], direct: dict[str, Any]) -> None:
    result["added_p50_ms"] = round(result["latency"]["p50_ms"] - direct["latency"]["p50_ms"], 3)
    result["added_p99_ms"] = round(result["latency"]["p99_ms"] - direct["latency"]["p99_ms"], 3)
    if "stream" in result and "stream" in direct:
        result["added_ttft_p50_ms"] = round(
            result["stream"]["ttft_p50_ms"] - direct["stream"]["ttft_p50_ms"], 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, a few seconds each")
    parser.add_argument("--litellm", default=shutil.which("litellm"),
                        help="path of the litellm executable (default: on PATH)")
    parser.add_argument("--concurrency", type=int, default=None)
    args = parser.parse_args()
    args.n = 150 if args.quick else 2000
    args.n_stream = 20 if args.quick else 200
    args.seconds = 2.0 if args.quick else 10.0
    args.concurrency = args.concurrency or (16 if args.quick else 64)

    tmp = Path(tempfile.mkdtemp(prefix="tsuba-bench-gw-"))
    for var in [v for v in os.environ if v.startswith("TSUBA_")]:
        del os.environ[var]
    ports = {"upstream": free_port(), "stream": free_port()}
    demo = [sys.executable, "-m", "tsuba.gateway.demo"]
    results: dict[str, Any] = {
        "benchmark": "gateway",
        "mode": "quick" if args.quick else "full",
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "cpus": os.cpu_count()},
        "prompt_bytes": len(PROMPT),
        "stream_word_delay_ms": 2,
    }
    try:
        with process([*demo, "--port", str(ports["upstream"])],
                     f"http://127.0.0.1:{ports['upstream']}/v1/models"), \
             process([*demo, "--port", str(ports["stream"]), "--delay", "0.002"],
                     f"http://127.0.0.1:{ports['stream']}/v1/models"):
            print("gateway benchmark (provisional on a shared machine)", flush=True)
            direct = measure("direct to upstream", f"http://127.0.0.1:{ports['upstream']}/v1",
                             {}, f"http://127.0.0.1:{ports['stream']}/v1", args)
            results["direct"] = direct
            key = prepare_home(tmp / "home")
            results["fsync_before"] = fsync_latency(tmp)
            print(f"  fsync on the data directory's disk: p50 "
                  f"{results['fsync_before']['p50_ms']:.3f} ms", flush=True)
            setups = {
                "tsuba_auth_limits_durable": ("durable", False),
                "tsuba_auth_limits_async": ("async", False),
                "tsuba_auth_limits_guards_durable": ("durable", True),
                "tsuba_auth_limits_guards_async": ("async", True),
            }
            for name, (durability, guards) in setups.items():
                result = run_tsuba(name, tmp / "home", key, ports, args,
                                   durability=durability, guards=guards)
                added(result, direct)
                results[name] = result
            results["fsync_after"] = fsync_latency(tmp)
            if args.litellm:
                lite = run_litellm(args.litellm, ports, args, tmp)
                if isinstance(lite, dict):
                    added(lite, direct)
                results["litellm"] = lite
            else:
                results["litellm"] = "not installed ('pip install litellm[proxy]' to compare)"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print("\nadded to a direct call (ms):")
    print(f"  {'set-up':<36}{'p50':>9}{'p99':>9}{'ttft p50':>10}{'req/s':>9}")
    for name, r in results.items():
        if isinstance(r, dict) and "added_p50_ms" in r:
            print(f"  {name:<36}{r['added_p50_ms']:9.3f}{r['added_p99_ms']:9.3f}"
                  f"{r.get('added_ttft_p50_ms', float('nan')):10.3f}"
                  f"{r['throughput']['requests_per_s']:9.1f}")
    print(f"  {'direct (req/s)':<36}{'':>28}{direct['throughput']['requests_per_s']:9.1f}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {RESULTS}")


if __name__ == "__main__":
    main()
