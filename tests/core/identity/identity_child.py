"""A separate process for the identity cache tests: a long-lived checker and a one-shot writer.

python identity_child.py check URL      reads "PRINCIPAL ACTION RESOURCE" lines, answers
                                        each with the decision as one JSON line
python identity_child.py bind URL ROLE PRINCIPAL     binds, prints "done"
"""

from __future__ import annotations

import json
import sys

from tsuba.core.identity import IdentityService
from tsuba.core.storage import open_engine


def check(url: str) -> None:
    engine = open_engine(url)
    with IdentityService(engine) as service:
        print("ready", flush=True)
        for line in sys.stdin:
            principal, action, resource = line.split()
            decision = service.authorize(principal, action, resource)
            version = service.authorizer.snapshot(principal).version
            print(json.dumps({**decision.to_dict(), "version": version}), flush=True)
    engine.dispose()


def bind(url: str, role: str, principal: str) -> None:
    engine = open_engine(url)
    with IdentityService(engine, actor="child") as service:
        service.bind(role, principal)
    engine.dispose()
    print("done", flush=True)


if __name__ == "__main__":
    command, url, *rest = sys.argv[1:]
    if command == "check":
        check(url)
    else:
        bind(url, *rest)
