"""Signing tree heads with the data directory's key manager, across a key rotation."""

from __future__ import annotations

from pathlib import Path

import pytest

from tsuba.core.audit import AuditLog, KeyManagerSigner, Signer
from tsuba.core.audit.verify import verify_inclusion, verify_tree_head
from tsuba.core.config import load_settings
from tsuba.core.errors import IntegrityError, KeyStoreError
from tsuba.core.home import init_home
from tsuba.core.keys import KeyKind, open_key_manager
from tsuba.core.storage import open_engine


def test_key_manager_signer_survives_rotation(home: Path, event) -> None:
    init_home(home)
    settings = load_settings(home)
    keys = open_key_manager(settings)
    signer = KeyManagerSigner(keys, settings.audit.signing_key)
    assert isinstance(signer, Signer)
    engine = open_engine(settings.sqlalchemy_url)
    try:
        with AuditLog(engine, signer, trusted_public_keys=signer.all_public_keys_pem()) as log:
            log.append_many([event(i) for i in range(5)])
            old_pem = signer.public_key_pem()
            first = log.sign_tree_head()
            verify_tree_head(first.to_dict(), old_pem)

        keys.rotate(settings.audit.signing_key)
        assert signer.public_key_pem() != old_pem
        trusted = signer.all_public_keys_pem()
        assert old_pem in trusted and len(trusted) == 2
        with AuditLog(engine, signer, trusted_public_keys=trusted) as log:
            log.append(event(5))
            proof = log.export_inclusion(5)
            assert proof.sth is not None and proof.sth.key_id != first.key_id
            verify_inclusion(proof.to_dict(), None, signer.public_key_pem())
            with pytest.raises(IntegrityError, match="not by the trusted key"):
                verify_tree_head(first.to_dict(), signer.public_key_pem())
            report = log.verify()
            assert report.ok and report.tree_heads_checked == 2
    finally:
        engine.dispose()


def test_a_key_that_cannot_sign_tree_heads_is_refused(home: Path, event) -> None:
    init_home(home)
    settings = load_settings(home)
    keys = open_key_manager(settings)
    keys.create("not-for-signing", KeyKind.AES256_GCM)
    engine = open_engine(settings.sqlalchemy_url)
    try:
        with AuditLog(engine, KeyManagerSigner(keys, "not-for-signing")) as log:
            log.append(event(0))
            with pytest.raises(KeyStoreError):
                log.sign_tree_head()
            assert log.latest_signed_tree_head() is None
    finally:
        engine.dispose()
