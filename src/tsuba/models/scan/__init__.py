"""Model file scanning: is a model file safe to load, judged from its bytes alone.

``scan_path(path)`` scans a file or a folder (a Hugging Face style model folder, recursively)
and returns a :class:`Report`.  Nothing from a scanned file is ever imported, unpickled or
executed.  ``sign_report`` binds a clean result to a model's signature digest so that a
registry can trust it without scanning again.
"""

from tsuba.models.scan.attestation import ScanAttestation, sign_report, verify_report
from tsuba.models.scan.context import Limits
from tsuba.models.scan.engine import scan_bytes, scan_file, scan_path
from tsuba.models.scan.report import FileResult, Finding, Report, Severity

__all__ = [
    "FileResult",
    "Finding",
    "Limits",
    "Report",
    "ScanAttestation",
    "Severity",
    "scan_bytes",
    "scan_file",
    "scan_path",
    "sign_report",
    "verify_report",
]
