"""Content guards: pure inspection of text, no I/O.

``pii``, ``secrets``, ``leaks`` and ``classify`` find things in text and return
:class:`Finding` values; ``anonymize`` rewrites text from findings (its ``store`` module is
the one place that touches a database, through the engine and key manager it is given).
"""

from tsuba.guards.types import Finding, ScanResult, max_score, resolve_overlaps

__all__ = ["Finding", "ScanResult", "max_score", "resolve_overlaps"]
