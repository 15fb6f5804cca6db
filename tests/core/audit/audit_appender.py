"""Child process for the audit tests: append events and acknowledge each one on stdout.

Usage: audit_appender.py DATABASE_URL COUNT THREADS TAG

A line ``<index> <leaf hash hex> <tag>`` is printed, flushed, after each ``append``
returns, i.e. once the entry is durable.
"""

from __future__ import annotations

import sys
import threading

from tsuba.core.audit import AuditLog
from tsuba.core.events import SecurityEvent
from tsuba.core.storage import open_engine


def main() -> None:
    url, count, threads, tag = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    log = AuditLog(open_engine(url))
    out = threading.Lock()

    def work(t: int) -> None:
        for i in range(t, count, threads):
            ev = SecurityEvent.from_dict(
                {"class": "api_activity", "message": f"{tag} {i}", "actor": tag}
            )
            receipt = log.append(ev)
            with out:
                sys.stdout.write(f"{receipt.index} {receipt.leaf_hash.hex()} {tag}\n")
                sys.stdout.flush()

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    log.close()


if __name__ == "__main__":
    main()
