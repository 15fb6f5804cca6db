"""Registering, provenance, lineage and status on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from model_files import make_model, pem_of, write_key_files

from tsuba.core.errors import ConflictError, InputError, NotFoundError
from tsuba.core.events import EventClass, SecurityEvent, Severity
from tsuba.models.registry import DatasetRef, ModelRef, Registry, register_model
from tsuba.models.registry.records import parse_params
from tsuba.models.sign import ModelIntegrityError, PrivateKeySigner, TrustedKey, verify_path

DS1 = "sha256:" + "1" * 64
DS2 = "sha256:" + "2" * 64


def test_register_records_provenance_and_a_verifiable_signature(
    add, registry: Registry, events: list[SecurityEvent], trusted: list[TrustedKey]
) -> None:
    base = add("acme/base:1.0", source="https://huggingface.co/acme/base",
               datasets=[f"corpus={DS1}"], params=["lr=3e-4", "epochs=2"])
    info = base.info
    assert (info.name, info.version, info.status) == ("acme/base", "1.0", "active")
    assert info.created_by == "cli:tester" and info.verified_at is not None
    assert info.source == "https://huggingface.co/acme/base"
    assert info.datasets == (DatasetRef(DS1, "corpus"),)
    assert info.params == {"lr": "3e-4", "epochs": "2"}
    assert info.file_count == 5 and info.total_bytes > 20_000
    assert info.scan == {"status": "skipped"}
    assert base.signed is not None and info.root_digest == base.signed.root_digest
    # The stored signature is the bundle on disk, and it verifies the files.
    assert info.signature == (Path(info.uri) / "model.sig").read_text()
    assert verify_path(info.uri, trusted).root_digest == info.root_digest
    again = registry.get("acme/base:1.0")
    assert again == info
    (event,) = events
    assert event.event_class is EventClass.ENTITY_MANAGEMENT and event.activity == "create"
    assert event.resource == "model/acme/base:1.0" and event.actor == "cli:tester"
    assert event.attributes["datasets"] == [DS1]


def test_duplicates_and_unknown_parents_are_refused_before_hashing(
    add, registry: Registry, signer: PrivateKeySigner, tmp_path: Path
) -> None:
    add("m:1")
    path = make_model(tmp_path / "again")
    with pytest.raises(ConflictError, match="m:1 is already registered"):
        register_model(registry, "m", "1", path, signer=signer, scan=False)
    with pytest.raises(NotFoundError, match="model ghost:9 is not registered"):
        register_model(registry, "m", "2", path, signer=signer, parents=["ghost:9"], scan=False)
    assert not (path / "model.sig").exists()  # nothing was signed
    for bad in (["sha256:abc"], ["md5:" + "0" * 32], [DS1, DS1]):
        with pytest.raises(InputError):
            register_model(registry, "m", "3", path, signer=signer, datasets=bad, scan=False)
    with pytest.raises(InputError, match="invalid model name"):
        register_model(registry, "../etc", "1", path, signer=signer, scan=False)
    with pytest.raises(InputError, match="invalid model version"):
        register_model(registry, "m", "1:2", path, signer=signer, scan=False)
    assert [v.ref for v in registry.list_versions()] == ["m:1"]


def test_register_a_model_signed_elsewhere_by_verifying_its_signature(
    registry: Registry, tmp_path: Path
) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec
    from model_signing import signing as ms_signing

    key = ec.generate_private_key(ec.SECP384R1())
    private, _ = write_key_files(key, tmp_path)
    model = make_model(tmp_path / "upstream")
    ms_signing.Config().use_elliptic_key_signer(private_key=private).sign(
        model, model / "model.sig"
    )
    trusted = [TrustedKey(pem_of(key), "publisher key")]
    done = register_model(registry, "upstream", "2024.1", model, trusted=trusted, scan=False)
    assert done.verified is not None and done.signed is None
    assert done.info.signed_by == "publisher key" and done.info.file_count == 5
    (model / "config.json").write_text("{}")
    with pytest.raises(ModelIntegrityError, match=r"modified: config\.json"):
        register_model(registry, "upstream", "2024.2", model, trusted=trusted, scan=False)
    assert [v.version for v in registry.list_versions(name="upstream")] == ["2024.1"]


def test_lineage_follows_models_and_datasets_transitively(add, registry: Registry) -> None:
    add("base:1", datasets=[DS1])
    add("sft:1", parents=["base:1"], datasets=[DS2])
    add("dpo:1", parents=["sft:1"])
    add("other:1", datasets=[DS2])
    add("merge:1", parents=["dpo:1", "other:1"])  # a diamond-free merge of two lines
    add("quant:1", parents=["merge:1", "sft:1"])  # reaches sft twice: depth 1 and 3

    lineage = registry.lineage("sft:1")
    assert [(e.ref, e.depth) for e in lineage.ancestors] == [("base:1", 1)]
    assert [(e.ref, e.depth) for e in lineage.descendants] == [
        ("dpo:1", 1), ("quant:1", 1), ("merge:1", 2)
    ]
    assert {d.digest for d in lineage.datasets} == {DS1, DS2}  # its own and inherited
    top = registry.lineage("quant:1")
    assert [(e.ref, e.depth) for e in top.ancestors] == [
        ("merge:1", 1), ("sft:1", 1), ("base:1", 2), ("dpo:1", 2), ("other:1", 2)
    ]
    assert top.descendants == ()
    used = registry.derived_from_dataset(DS1)
    assert [(e.ref, e.depth) for e in used.descendants] == [
        ("base:1", 0), ("sft:1", 1), ("dpo:1", 2), ("quant:1", 2), ("merge:1", 3)
    ]
    used2 = registry.derived_from_dataset(DS2.split(":")[1])  # bare hex means SHA-256
    assert {e.ref for e in used2.descendants} == {"sft:1", "other:1", "dpo:1", "merge:1",
                                                  "quant:1"}
    assert registry.derived_from_dataset("sha256:" + "9" * 64).descendants == ()
    assert registry.get("quant:1").parents == ("merge:1", "sft:1")
    assert registry.get("sft").ref == "sft:1"  # a bare name is the newest version


def test_status_changes_are_checked_and_recorded(
    add, registry: Registry, events: list[SecurityEvent]
) -> None:
    add("m:1")
    events.clear()
    with pytest.raises(InputError, match="say why"):
        registry.quarantine("m:1", "")
    info = registry.quarantine("m:1", "CVE in tokenizer")
    assert info.status == "quarantined" and info.status_reason == "CVE in tokenizer"
    assert registry.quarantine("m:1", "again").status == "quarantined"  # no change, no event
    assert registry.release("m:1", "fixed upstream").status == "active"
    assert registry.retire("m:1", "superseded").status == "retired"
    with pytest.raises(ConflictError, match="m:1 is retired: it cannot become active"):
        registry.release("m:1", "back")
    with pytest.raises(InputError, match="name a version"):
        registry.quarantine("m", "which one?")
    with pytest.raises(NotFoundError):
        registry.retire("m:2")
    assert [(e.activity, e.severity, e.attributes["previous_status"]) for e in events] == [
        ("update", Severity.HIGH, "active"),
        ("update", Severity.MEDIUM, "quarantined"),
        ("update", Severity.LOW, "active"),
    ]
    assert events[0].message == "quarantined model m:1 (was active): CVE in tokenizer"
    assert registry.list_versions(status="retired")[0].ref == "m:1"
    assert registry.list_versions(status="active") == []


@given(text=st.text(max_size=80))
def test_refs_and_dataset_digests_parse_or_refuse_cleanly(text: str) -> None:
    for parse in (ModelRef.parse, DatasetRef.parse):
        try:
            parsed = parse(text)
        except InputError:
            continue
        assert str(parsed) if isinstance(parsed, ModelRef) else parsed.digest


def test_params_are_bounded() -> None:
    assert parse_params(["a=1", "b.c=x=y"]) == {"a": "1", "b.c": "x=y"}
    for bad, message in ((["novalue"], "key=value"), (["a=1", "a=2"], "twice"),
                         (["bad key=1"], "invalid parameter name"),
                         ([f"k={'x' * 2000}"], "longer than")):
        with pytest.raises(InputError, match=message):
            parse_params(bad)
