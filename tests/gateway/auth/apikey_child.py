"""A separate gateway-like process for the revocation test: verifies keys read from stdin.

python apikey_child.py DB_URL KEYRING_PATH     (master key hex in TSUBA_TEST_MASTER_HEX)

prints "ready", then answers each line (an API key) with one JSON line.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from tsuba.core.keys.local import LocalKeyManager
from tsuba.core.keys.master import MasterSecret
from tsuba.core.storage import open_engine
from tsuba.gateway.auth import ApiKeyVerifier, AuthFailure


def main(url: str, keyring: str) -> None:
    master = MasterSecret(source="test", key=bytes.fromhex(os.environ["TSUBA_TEST_MASTER_HEX"]))
    engine = open_engine(url)
    verifier = ApiKeyVerifier(engine, LocalKeyManager(Path(keyring), master))
    print("ready", flush=True)
    for line in sys.stdin:
        try:
            identity = verifier.verify(line.strip())
            answer = {"ok": True, "principal": identity.principal}
        except AuthFailure as exc:
            answer = {"ok": False, "reason": exc.reason, "message": exc.message}
        print(json.dumps(answer), flush=True)
    verifier.close()
    engine.dispose()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
