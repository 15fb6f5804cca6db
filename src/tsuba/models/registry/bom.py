"""The AI bill of materials of a registered version: CycloneDX 1.6 ML-BOM, schema-validated.

cyclonedx-python-lib builds the document (model, files, datasets, pedigree, dependencies)
but has no model card, so the card (training datasets by reference, hyperparameters) is
added to its JSON afterwards, and the whole result is validated against the 1.6 schema
before anyone sees it.  cyclonedx (and the JSON schema machinery under it) is imported only
when a BOM is built: it takes seconds to import, which no other command should pay.
"""

from __future__ import annotations

import json
import warnings
from typing import TYPE_CHECKING, Any

from tsuba import __version__
from tsuba.core.errors import InputError, TsubaError
from tsuba.models.registry.records import DatasetRef, VersionInfo, iso
from tsuba.models.registry.service import Registry
from tsuba.models.sign.bundle import parse_bundle, parse_statement
from tsuba.models.sign.manifest import Manifest

if TYPE_CHECKING:
    from cyclonedx.model import HashAlgorithm, Property
    from cyclonedx.model.component import Component

_HASHES = {
    "sha256": "SHA_256",
    "sha384": "SHA_384",
    "sha512": "SHA_512",
    "blake2b": "BLAKE2B_512",
    "blake3": "BLAKE3",
}


def _hash_algorithm(name: str) -> HashAlgorithm | None:
    from cyclonedx.model import HashAlgorithm  # noqa: PLC0415

    member = _HASHES.get(name)
    return None if member is None else HashAlgorithm[member]


def _ref(info: VersionInfo | str) -> str:
    return f"model:{info.ref if isinstance(info, VersionInfo) else info}"


def _props(pairs: dict[str, Any]) -> list[Property]:
    from cyclonedx.model import Property  # noqa: PLC0415

    return [Property(name=k, value=str(v)) for k, v in pairs.items() if v not in (None, "")]


def _dataset(ref: DatasetRef, *, inherited: bool) -> Component:
    from cyclonedx.model import HashType  # noqa: PLC0415
    from cyclonedx.model.component import Component, ComponentType  # noqa: PLC0415

    algorithm = _hash_algorithm(ref.algorithm)
    return Component(
        name=ref.name or ref.digest,
        type=ComponentType.DATA,
        bom_ref=f"dataset:{ref.digest}",
        hashes=[HashType(alg=algorithm, content=ref.hex)] if algorithm else None,
        properties=_props({"tsuba:dataset:digest": ref.digest,
                           "tsuba:dataset:inherited": str(inherited).lower()}),
    )


def _files(info: VersionInfo) -> list[Component]:
    """One component per file, with its digest where the signature has one per file."""
    from cyclonedx.model import HashType  # noqa: PLC0415
    from cyclonedx.model.component import Component, ComponentType  # noqa: PLC0415

    try:
        stmt = parse_statement(parse_bundle(info.signature.encode()).payload)
        manifest = Manifest.from_predicate(stmt.model_name, stmt.predicate)
    except InputError:
        return []
    whole = manifest.spec.shard_size is None and manifest.spec.size == {
        "sha256": 32, "blake2b": 64, "blake3": 32
    }[manifest.spec.algorithm]
    algorithm = _hash_algorithm(manifest.spec.algorithm)
    sizes = dict(manifest.files or ())
    out = []
    for name, resources in manifest.expected_files().items():
        hashes = [HashType(alg=algorithm, content=resources[0].digest.hex())] if (
            algorithm is not None and whole and len(resources) == 1
        ) else None
        props: dict[str, Any] = {"tsuba:file:size": sizes.get(name)}
        if not whole and resources:
            props["tsuba:file:shards"] = len(resources)
        out.append(Component(
            name=name, type=ComponentType.FILE, bom_ref=f"file:{info.ref}:{name}",
            hashes=hashes, properties=_props(props),
        ))
    return out


def build_bom(
    info: VersionInfo, ancestors: list[tuple[VersionInfo, int]], datasets: list[DatasetRef]
) -> dict[str, Any]:
    """The ML-BOM of ``info`` as JSON-ready data (validated)."""
    from cyclonedx.model import (  # noqa: PLC0415
        ExternalReference,
        ExternalReferenceType,
        Property,
        XsUri,
    )
    from cyclonedx.model.bom import Bom  # noqa: PLC0415
    from cyclonedx.model.component import Component, ComponentType, Pedigree  # noqa: PLC0415
    from cyclonedx.model.contact import OrganizationalContact  # noqa: PLC0415
    from cyclonedx.output.json import JsonV1Dot6  # noqa: PLC0415

    direct = {d.digest for d in info.datasets}
    pedigree = Pedigree(ancestors=[
        Component(
            name=a.name, version=a.version, type=ComponentType.MACHINE_LEARNING_MODEL,
            bom_ref=_ref(a),
            properties=_props({"tsuba:lineage:depth": depth, "tsuba:status": a.status,
                               "tsuba:manifest:root_digest": a.root_digest}),
        )
        for a, depth in ancestors
    ]) if ancestors else None
    ser = info.serialization
    refs = []
    if info.source and info.source.startswith(("https://", "http://", "git+", "hf://", "s3://")):
        refs.append(ExternalReference(
            type=ExternalReferenceType.DISTRIBUTION, url=XsUri(info.source)
        ))
    model = Component(
        name=info.name,
        version=info.version,
        type=ComponentType.MACHINE_LEARNING_MODEL,
        bom_ref=_ref(info),
        authors=[OrganizationalContact(name=info.created_by)],
        external_references=refs or None,
        pedigree=pedigree,
        components=_files(info) or None,
        properties=_props({
            "tsuba:status": info.status,
            "tsuba:status:reason": info.status_reason,
            "tsuba:registered_at": iso(info.created_at),
            "tsuba:registered_by": info.created_by,
            "tsuba:verified_at": iso(info.verified_at),
            "tsuba:source": info.source,
            "tsuba:uri": info.uri,
            "tsuba:manifest:root_digest": info.root_digest,
            "tsuba:manifest:method": ser.get("method"),
            "tsuba:manifest:hash_type": ser.get("hash_type"),
            "tsuba:manifest:shard_size": ser.get("shard_size"),
            "tsuba:manifest:files": info.file_count,
            "tsuba:manifest:bytes": info.total_bytes,
            "tsuba:signature:key_hint": info.key_hint,
            "tsuba:signature:signed_by": info.signed_by,
            "tsuba:scan:status": info.scan.get("status"),
            "tsuba:scan:tool_version": info.scan.get("tool_version"),
            "tsuba:scan:findings": info.scan.get("findings"),
        }),
    )
    bom = Bom()
    bom.metadata.component = model
    bom.metadata.properties.add(Property(name="tsuba:version", value=__version__))
    data = [_dataset(d, inherited=d.digest not in direct) for d in datasets]
    for component in data:
        bom.components.add(component)
    bom.register_dependency(model, [c for c in data if c.bom_ref.value
                                    in {f"dataset:{d}" for d in direct}])
    with warnings.catch_warnings():
        # A model trained on no recorded dataset has no dependencies: that is the truth,
        # not an incomplete graph.
        warnings.simplefilter("ignore", UserWarning)
        doc: dict[str, Any] = json.loads(JsonV1Dot6(bom).output_as_string())
    card: dict[str, Any] = {"bom-ref": f"model-card:{info.ref}"}
    if direct:
        card["modelParameters"] = {"datasets": [{"ref": f"dataset:{d}"} for d in sorted(direct)]}
    if info.params:
        card["properties"] = [{"name": k, "value": v} for k, v in sorted(info.params.items())]
    doc["metadata"]["component"]["modelCard"] = card
    validate_bom(doc)
    return doc


def validate_bom(doc: dict[str, Any]) -> None:
    from cyclonedx.schema import SchemaVersion  # noqa: PLC0415
    from cyclonedx.validation.json import JsonStrictValidator  # noqa: PLC0415

    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(doc))
    if error is not None:
        first = str(error).strip().splitlines()[0]
        raise TsubaError(f"the AI-BOM does not validate against CycloneDX 1.6: {first}")


def export_bom(registry: Registry, ref: str) -> dict[str, Any]:
    info = registry.get(ref)
    lineage = registry.lineage(info.ref)
    ancestors = [(registry.get(a.ref), a.depth) for a in lineage.ancestors]
    return build_bom(info, ancestors, list(lineage.datasets))


__all__ = ["build_bom", "export_bom", "validate_bom"]
