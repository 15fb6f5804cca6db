"""Model registry: versions with provenance, lineage, status, AI-BOM, and serving policy.

``register_model`` scans, signs (or verifies) and records a model; ``Registry`` reads and
changes versions (every change is a SecurityEvent); ``ensure_servable(model, engine)``
refuses a model that is not registered, verified and active; ``export_bom`` writes the
CycloneDX 1.6 ML-BOM of a version.
"""

from tsuba.models.registry.bom import build_bom, export_bom, validate_bom
from tsuba.models.registry.records import (
    DatasetRef,
    Lineage,
    LineageEntry,
    ModelRef,
    Status,
    VersionInfo,
)
from tsuba.models.registry.register import (
    Registration,
    UnsafeModelError,
    check_integrity,
    register_model,
    scan_model,
)
from tsuba.models.registry.service import Registry
from tsuba.models.registry.serving import (
    ModelNotServableError,
    ServingDecision,
    ServingGate,
    ServingPolicy,
    ensure_servable,
)

__all__ = [
    "DatasetRef",
    "Lineage",
    "LineageEntry",
    "ModelNotServableError",
    "ModelRef",
    "Registration",
    "Registry",
    "ServingDecision",
    "ServingGate",
    "ServingPolicy",
    "Status",
    "UnsafeModelError",
    "VersionInfo",
    "build_bom",
    "check_integrity",
    "ensure_servable",
    "export_bom",
    "register_model",
    "scan_model",
    "validate_bom",
]
