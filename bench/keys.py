"""Envelope encryption against plain AES-256-GCM, the physical reference, side by side.

For each object size (1 KiB, 64 KiB, 1 MiB) the script measures:

- ``plain``: ``AESGCM`` from pyca ``cryptography`` with one fixed key and a fresh random
  nonce per object: the cost of the cipher alone, no key management;
- ``envelope``: ``tsuba.core.keys.envelope.encrypt`` / ``decrypt`` over the local keyring:
  a fresh data key per object, wrapped (and unwrapped) under the keyring's KEK, and the
  binary header;
- ``envelope_pkcs11`` (when TSUBA_TEST_PKCS11_MODULE names a SoftHSM2 module): the same with
  the KEK inside a SoftHSM2 token, to show what an HSM round trip costs per object.

Throughput is MB/s of plaintext (1 MB = 10**6 bytes), the best of several rounds since the
machine may be shared.  The ratio ``envelope / plain`` is the figure of merit (per-object key
wrapping must amortise on large objects); it is the median over rounds that time the
reference and tsuba back to back.

    python bench/keys.py --quick     # a few seconds
    python bench/keys.py             # full rounds

Figures go to bench/results/keys.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cryptography
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tsuba.core.keys import KeyKind, KeyManager, envelope
from tsuba.core.keys.local import LocalKeyManager
from tsuba.core.keys.master import MasterSecret

RESULTS = Path(__file__).parent / "results" / "keys.json"
SIZES = {"1KiB": 1024, "64KiB": 64 * 1024, "1MiB": 1024 * 1024}
AAD = b"table:documents/id:123456"


def rate(fn: Callable[[], object], size: int, min_time: float) -> float:
    """MB/s of one run of at least ``min_time`` seconds."""
    n, start = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_time:
            return n * size / elapsed / 1e6


def paired(plain: Callable[[], object], ours: Callable[[], object], size: int,
           min_time: float, rounds: int) -> tuple[float, float, float]:
    """Best MB/s of each, and the median ratio of rounds run back to back.

    Each round times the reference and then tsuba under the same machine load, so the
    ratio is steadier than a ratio of two best figures taken at different moments.
    """
    plain()
    ours()  # warm caches (key objects, keyring reads)
    pairs = [(rate(plain, size, min_time), rate(ours, size, min_time)) for _ in range(rounds)]
    ratio = statistics.median(o / p for p, o in pairs)
    return (round(max(p for p, _ in pairs), 1), round(max(o for _, o in pairs), 1),
            round(ratio, 3))


def measure(km: KeyManager, kek: str, min_time: float, rounds: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    fixed = AESGCM(AESGCM.generate_key(bit_length=256))
    for label, size in SIZES.items():
        plaintext = os.urandom(size)
        nonce = os.urandom(12)
        sealed = fixed.encrypt(nonce, plaintext, AAD)
        blob = envelope.encrypt(km, kek, plaintext, AAD)
        assert envelope.decrypt(km, blob, AAD) == plaintext
        p_enc, e_enc, r_enc = paired(
            lambda p=plaintext: fixed.encrypt(os.urandom(12), p, AAD),
            lambda p=plaintext: envelope.encrypt(km, kek, p, AAD),
            size, min_time, rounds,
        )
        p_dec, e_dec, r_dec = paired(
            lambda s=sealed, n=nonce: fixed.decrypt(n, s, AAD),
            lambda b=blob: envelope.decrypt(km, b, AAD),
            size, min_time, rounds,
        )
        out[label] = {
            "plain_encrypt_mb_s": p_enc,
            "envelope_encrypt_mb_s": e_enc,
            "encrypt_ratio": r_enc,
            "plain_decrypt_mb_s": p_dec,
            "envelope_decrypt_mb_s": e_dec,
            "decrypt_ratio": r_dec,
            "envelope_overhead_bytes": len(blob) - size,
        }
    return out


def local_manager(workdir: Path) -> KeyManager:
    km = LocalKeyManager.initialise(
        workdir / "keyring.json", MasterSecret(source="bench", key=os.urandom(32))
    )
    km.create("data", KeyKind.AES256_GCM)
    return km


def pkcs11_manager(workdir: Path, module: str) -> KeyManager:
    from tsuba.core.keys.pkcs11 import Pkcs11KeyManager  # noqa: PLC0415 - optional extra

    tokens = workdir / "tokens"
    tokens.mkdir()
    conf = workdir / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\n")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", "bench",
                    "--so-pin", "12345678", "--pin", "123456"], check=True, capture_output=True)
    km = Pkcs11KeyManager(module, "bench", "123456")
    km.create("data", KeyKind.AES256_GCM)
    return km


def print_table(name: str, rows: dict[str, Any]) -> None:
    print(f"\n{name}")
    print(f"{'size':>6} {'plain enc':>10} {'env enc':>10} {'ratio':>6} "
          f"{'plain dec':>10} {'env dec':>10} {'ratio':>6}   (MB/s)")
    for label, r in rows.items():
        print(f"{label:>6} {r['plain_encrypt_mb_s']:>10} {r['envelope_encrypt_mb_s']:>10} "
              f"{r['encrypt_ratio']:>6} {r['plain_decrypt_mb_s']:>10} "
              f"{r['envelope_decrypt_mb_s']:>10} {r['decrypt_ratio']:>6}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short rounds (a few seconds)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    min_time, rounds = (0.05, 3) if args.quick else (0.3, 9)

    results: dict[str, Any] = {
        "benchmark": "keys",
        "mode": "quick" if args.quick else "full",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "cryptography": cryptography.__version__,
            "openssl": _openssl_version(),
        },
        "reference": "cryptography AESGCM, fixed key, fresh nonce per object",
        "aad_bytes": len(AAD),
        "backends": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        results["backends"]["local"] = measure(local_manager(workdir), "data", min_time, rounds)
        print_table("envelope over the local keyring vs plain AES-GCM",
                    results["backends"]["local"])
        module = os.environ.get("TSUBA_TEST_PKCS11_MODULE")
        if module:
            km = pkcs11_manager(workdir, module)
            results["backends"]["pkcs11"] = measure(km, "data", min_time, rounds)
            print_table("envelope with the KEK in SoftHSM2 vs plain AES-GCM",
                        results["backends"]["pkcs11"])
        else:
            results["backends"]["pkcs11"] = "skipped: TSUBA_TEST_PKCS11_MODULE not set"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwritten to {args.out}")


def _openssl_version() -> str:
    from cryptography.hazmat.backends.openssl.backend import backend  # noqa: PLC0415

    return str(backend.openssl_version_text())


if __name__ == "__main__":
    main()
