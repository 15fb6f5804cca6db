"""The built-in playbook actions against the real parts they act on, on SQLite and PostgreSQL:
API keys, principals, the IP block list (and a real gateway refusing what they block), the
model registry, the key store; e-mail through a real SMTP server (aiosmtpd) with STARTTLS,
implicit TLS and logins; and every action's failure retried, then escalated."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st
from soar_events import Clock, alert

from processes import free_port
from tsuba.core.config import load_settings
from tsuba.core.errors import ConfigError, DecryptionError, InputError, NotFoundError
from tsuba.core.events import SecurityEvent, Severity
from tsuba.core.home import init_home
from tsuba.core.identity import IdentityService
from tsuba.core.keys import KeyKind
from tsuba.core.platform import Platform
from tsuba.gateway.app import create_app
from tsuba.gateway.auth import ApiKeyService
from tsuba.gateway.auth.failures import AuthFailure
from tsuba.gateway.auth.verifier import ApiKeyVerifier
from tsuba.gateway.demo import DemoUpstream
from tsuba.models.registry import Registry
from tsuba.soar.actions import (
    SmtpConfig,
    SmtpDeliveryError,
    build_message,
    builtin_actions,
    open_rotated_key,
    send_email,
    store_smtp_password,
)
from tsuba.soar.blocklist import IpBlocklist, block_network, list_blocked, unblock_network
from tsuba.soar.incidents import IncidentService
from tsuba.soar.playbooks import PlaybookRunner, parse_playbook

DESTRUCTIVE = {"revoke_api_key", "rotate_api_key", "block_principal", "block_ip",
               "quarantine_model", "rotate_key"}


# -- a platform with an incident -----------------------------------------------------------

@dataclass
class World:
    platform: Platform
    incidents: IncidentService
    incident: int
    keys: ApiKeyService
    identity: IdentityService
    steps: list[SecurityEvent] = field(default_factory=list)
    sleeps: list[float] = field(default_factory=list)

    def actions(self, **kwargs: Any) -> dict[str, Any]:
        return builtin_actions(self.platform, self.incidents, **kwargs)

    def runner(self, **kwargs: Any) -> PlaybookRunner:
        return PlaybookRunner(self.incidents, self.actions(**kwargs), emit=self.steps.append,
                              sleep=self.sleeps.append, backoff=0.5)

    def audit(self) -> list[dict[str, Any]]:
        log = self.platform.audit
        return [e.event().to_dict() for e in log.entries(0, log.size())]


@pytest.fixture
def world(home: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    if not db_url.startswith("sqlite"):
        monkeypatch.setenv("TSUBA_DATABASE_URL", db_url)
    init_home(home)
    platform = Platform.open(load_settings(home))
    incidents = IncidentService(platform.engine, emit=platform.record, actor="responder",
                                clock=Clock())
    opened = incidents.ingest(alert("tsuba.auth.key_new_network", Severity.HIGH,
                                    group={"src_ip": "203.0.113.9"}))
    identity = IdentityService(platform.engine, emit=platform.record, actor="admin")
    identity.create_principal("svc", "service")
    keys = ApiKeyService(platform.engine, platform.keys, emit=platform.record, actor="admin")
    yield World(platform, incidents, opened.incident.id, keys, identity)
    identity.close()
    platform.close()


def playbook(*steps: dict[str, Any]) -> Any:
    return parse_playbook({"id": "respond", "title": "Respond", "author": "carol",
                           "version": "7",
                           "steps": [{"id": f"s{i}", "approval": "auto", **s}
                                     for i, s in enumerate(steps)]})


# -- the registry ------------------------------------------------------------------------------

def test_every_builtin_action_is_registered_and_destructive_ones_need_approval(
    world: World,
) -> None:
    actions = world.actions()
    assert set(actions) >= {"incident_note", "note", "webhook", "email", *DESTRUCTIVE}
    assert {name for name, a in actions.items() if a.destructive} == DESTRUCTIVE
    key = world.keys.create("svc")
    pb = parse_playbook({"id": "p", "title": "t", "steps": [
        {"id": "revoke", "action": "revoke_api_key", "params": {"prefix": key.record.prefix}}]})
    runner = world.runner()
    assert runner.run(pb, world.incident)[0].status == "needs_approval"
    assert world.keys.get(key.record.prefix).status == "active"


# -- API keys -----------------------------------------------------------------------------------

def test_revoke_api_key_is_idempotent(world: World) -> None:
    key = world.keys.create("svc")
    revoke = world.actions()["revoke_api_key"]
    assert revoke({"prefix": key.record.prefix}) == f"API key {key.record.prefix} revoked"
    assert "already revoked" in revoke({"prefix": key.record.prefix})
    assert world.keys.get(key.record.prefix).status == "revoked"
    with pytest.raises(NotFoundError):
        revoke({"prefix": "tsk_" + "a" * 13})
    with pytest.raises(InputError, match="needs 'prefix'"):
        revoke({})


def test_rotate_api_key_revokes_the_old_and_keeps_the_secret_only_where_told(
    world: World, tmp_path: Path,
) -> None:
    platform = world.platform
    old = world.keys.create("svc", scopes=["chat", "embeddings"])
    prefix = old.record.prefix
    verifier = ApiKeyVerifier(platform.engine, platform.keys)
    try:
        assert verifier.verify(old.key).principal == "svc"
        rotate = world.actions()["rotate_api_key"]
        detail = rotate({"prefix": prefix})
        record = world.keys.get(prefix)
        assert record.status == "revoked" and record.replaced_by is not None
        new = world.keys.get(record.replaced_by)
        assert (new.principal, new.scopes, new.status) == ("svc", ("chat", "embeddings"),
                                                           "active")
        assert new.prefix in detail and "not kept" in detail
        assert "tsk_" not in detail.replace(prefix, "").replace(new.prefix, "")
        with pytest.raises(AuthFailure, match="revoked"):
            verifier.verify(old.key)
        assert f"already rotated to {new.prefix}" in rotate({"prefix": prefix})
        assert world.keys.get(new.prefix).replaced_by is None  # no second successor

        drop = tmp_path / "rotated"
        kept = world.actions(rotated_key_dir=drop)["rotate_api_key"]({"prefix": new.prefix})
        third = world.keys.get(new.prefix).replaced_by
        assert third is not None and str(drop / f"{third}.tse") in kept
        secret = open_rotated_key(platform.keys, drop / f"{third}.tse")
        assert secret["signing_secret"] is None and secret["key"] is not None
        assert secret["key"].encode() not in (drop / f"{third}.tse").read_bytes()
        assert verifier.verify(secret["key"]).credential_id == third
        signer = world.keys.create("svc", signing=True)
        world.actions(rotated_key_dir=drop)["rotate_api_key"]({"prefix": signer.record.prefix})
        successor = world.keys.get(signer.record.prefix).replaced_by
        kept_signing = open_rotated_key(platform.keys, drop / f"{successor}.tse")
        assert kept_signing["signing_secret"] and world.keys.get(str(successor)).signing
        moved = drop / "tsk_other.tse"
        moved.write_bytes((drop / f"{third}.tse").read_bytes())
        with pytest.raises(DecryptionError):
            open_rotated_key(platform.keys, moved)  # bound to its prefix
    finally:
        verifier.close()
    rotated = [e for e in world.audit() if e.get("attributes", {}).get("change") == "rotate"]
    assert len(rotated) == 3


# -- principals -------------------------------------------------------------------------------

def test_block_principal_makes_the_gateway_checks_refuse_it(world: World) -> None:
    platform = world.platform
    key = world.keys.create("svc")
    verifier = ApiKeyVerifier(platform.engine, platform.keys)
    try:
        assert verifier.verify(key.key).principal == "svc"
        block = world.actions()["block_principal"]
        assert block({"principal": "svc"}) == "principal 'svc' disabled"
        assert "already disabled" in block({"principal": "svc"})
        with pytest.raises(AuthFailure, match="disabled"):
            verifier.verify(key.key)
        decision = world.identity.authorize("svc", "model:invoke", "model/demo")
        assert not decision.allowed and "disabled" in decision.reason
        with pytest.raises(NotFoundError):
            block({"principal": "nobody"})
    finally:
        verifier.close()


# -- addresses ----------------------------------------------------------------------------------

def test_block_ip_is_stored_cached_and_idempotent(world: World) -> None:
    engine = world.platform.engine
    block = world.actions()["block_ip"]
    assert block({"ip": "203.0.113.9", "incident": str(world.incident)}) == \
        "203.0.113.9/32 blocked"
    assert block({"ip": "203.0.113.9"}) == "203.0.113.9/32 was already blocked"
    assert "until" in block({"ip": "198.51.100.0/24", "for": "1h"})
    check = IpBlocklist(engine, refresh_seconds=0)
    assert check.blocked("203.0.113.9") is not None
    assert check.blocked("::ffff:203.0.113.9") is not None  # IPv4-mapped form
    assert check.blocked("198.51.100.77") is not None
    assert check.blocked("203.0.113.10") is None
    assert check.blocked("") is None and check.blocked("not-an-ip") is None
    entry = check.blocked("203.0.113.9")
    assert entry is not None and entry.incident_id == world.incident
    assert entry.reason == f"incident {world.incident}" and entry.blocked_by == "responder"
    for bad, message in [("0.0.0.0/0", "too wide"), ("10.0.0.0/7", "too wide"),
                         ("2001::/16", "too wide"), ("203.0.113.9/24", "host bits"),
                         ("300.1.1.1", "invalid"), ("", "needs 'ip'")]:
        with pytest.raises(InputError, match=message):
            block({"ip": bad})
    with pytest.raises(InputError, match="duration"):
        block({"ip": "192.0.2.1", "for": "forever"})
    assert unblock_network(engine, "203.0.113.9") and not unblock_network(engine, "203.0.113.9")
    assert check.blocked("203.0.113.9") is None
    events = [e for e in world.audit() if e.get("attributes", {}).get("change") == "block_ip"]
    assert [e["resource"] for e in events] == ["ip/203.0.113.9/32", "ip/198.51.100.0/24"]


def test_an_expired_block_lapses_and_can_be_renewed(world: World) -> None:
    engine = world.platform.engine
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
    block_network(engine, "192.0.2.7", reason="test", actor="t", expires_at=soon)
    check = IpBlocklist(engine, refresh_seconds=0)
    assert check.blocked("192.0.2.7") is not None
    later = soon + dt.timedelta(seconds=1)
    assert [b.network for b in list_blocked(engine, at=later)] == []
    while dt.datetime.now(dt.UTC) < later:
        time.sleep(0.05)
    assert check.blocked("192.0.2.7") is None
    entry, created = block_network(engine, "192.0.2.7", reason="again", actor="t")
    assert created and entry.expires_at is None and check.blocked("192.0.2.7") is not None


def test_other_processes_see_a_change_within_their_refresh_and_only_then_reread(
    engine: Any, db_url: str,
) -> None:
    """A checker on its own engine stands for another gateway process."""
    from sqlalchemy import event

    from tsuba.core.storage import open_engine

    elsewhere = open_engine(db_url)
    statements: list[str] = []
    event.listen(elsewhere, "before_cursor_execute",
                 lambda *args: statements.append(str(args[2]))
                 if str(args[2]).startswith("SELECT") else None)
    now = [100.0]
    check = IpBlocklist(elsewhere, refresh_seconds=1.0, clock=lambda: now[0])
    try:
        assert check.blocked("192.0.2.8") is None
        block_network(engine, "192.0.2.8", reason="r", actor="t")
        assert check.blocked("192.0.2.8") is None  # within its refresh time
        now[0] += 1.0
        assert check.blocked("192.0.2.8") is not None
        statements.clear()
        for _ in range(3):
            now[0] += 1.0
            assert check.blocked("192.0.2.8") is not None
        assert len(statements) == 3
        assert all("soar_blocklist_version" in s and "soar_blocked_ips" not in s
                   for s in statements)  # the version only: the list is unchanged
        assert unblock_network(engine, "192.0.2.8")
        now[0] += 1.0
        assert check.blocked("192.0.2.8") is None
    finally:
        elsewhere.dispose()


def test_the_cached_check_agrees_with_a_plain_scan(engine: Any) -> None:
    """Random networks of every prefix length and addresses in and around them: the
    per-prefix tables give the answer a scan of every network gives."""
    import random

    rng = random.Random(20261125)
    nets: list[Any] = []
    for _ in range(300):
        v6 = rng.random() < 0.3
        bits, widest = (128, 32) if v6 else (32, 8)
        prefix = rng.randint(widest, bits)
        base = (0x20010DB8 << 96) if v6 else (10 << 24)
        value = base | rng.getrandbits(bits - (32 if v6 else 8))
        net = ipaddress.ip_network((value >> (bits - prefix) << (bits - prefix), prefix))
        nets.append(net)
        block_network(engine, str(net), reason="r", actor="t")
    check = IpBlocklist(engine, refresh_seconds=60)
    unique = {str(n): n for n in nets}.values()
    probes = [n.network_address + rng.randrange(n.num_addresses) for n in nets]
    probes += [n.network_address - 1 for n in nets if int(n.network_address) > 0]
    probes += [ipaddress.ip_address(rng.getrandbits(32)) for _ in range(500)]
    for addr in probes:
        expected = any(addr in n for n in unique)
        assert (check.blocked(str(addr)) is not None) is expected, addr


@given(st.ip_addresses())
@settings(max_examples=200, deadline=None)
def test_parse_network_accepts_every_address_as_a_host(addr: Any) -> None:
    from tsuba.soar.blocklist import parse_network

    net = parse_network(str(addr))
    assert net.num_addresses == 1
    mapped = getattr(addr, "ipv4_mapped", None)
    assert net.network_address == (mapped or addr)


# -- models and keys ----------------------------------------------------------------------------

def test_quarantine_model_and_rotate_key(world: World) -> None:
    platform = world.platform
    Registry(platform.engine, actor="admin").record(
        name="llama", version="1", uri="file:///models/llama", root_digest="0" * 64,
        serialization={}, signature="sig", key_hint="k", signed_by="admin", file_count=1,
        total_bytes=1, scan={})
    actions = world.actions()
    quarantine = actions["quarantine_model"]
    assert quarantine({"model": "llama:1", "reason": "backdoor"}) == "model llama:1 quarantined"
    assert "already quarantined" in quarantine({"model": "llama:1"})
    assert Registry(platform.engine, actor="x").get("llama:1").status == "quarantined"
    with pytest.raises(InputError, match="name a version"):
        quarantine({"model": "llama"})

    platform.keys.create("soar-test", KeyKind.AES256_GCM)
    rotate = actions["rotate_key"]
    assert rotate({"key": "soar-test", "from_version": 1}) == \
        "key 'soar-test' rotated to version 2"
    assert "already rotated (now version 2)" in rotate({"key": "soar-test", "from_version": 1})
    assert platform.keys.info("soar-test").current_version == 2
    assert rotate({"key": "soar-test"}) == "key 'soar-test' rotated to version 3"
    with pytest.raises(InputError, match="from_version"):
        rotate({"key": "soar-test", "from_version": "latest"})
    kinds = [e["attributes"].get("key") for e in world.audit()
             if e.get("activity") == "rotate"]
    assert kinds.count("soar-test") == 2


# -- retry, then escalation, for every kind ----------------------------------------------------

FAILING = [
    ("incident_note", {"incident": "999999", "text": "x"}),
    ("webhook", {"url": "http://127.0.0.1:{port}/hook", "text": "x"}),
    ("email", {"to": "soc@example.org", "subject": "s", "text": "t"}),
    ("revoke_api_key", {"prefix": "tsk_aaaaaaaaaaaaa"}),
    ("rotate_api_key", {"prefix": "tsk_aaaaaaaaaaaaa"}),
    ("block_principal", {"principal": "nobody"}),
    ("block_ip", {"ip": "0.0.0.0/0"}),
    ("quarantine_model", {"model": "ghost:1"}),
    ("rotate_key", {"key": "no-such-key"}),
]


@pytest.mark.parametrize(("action", "params"), FAILING, ids=[a for a, _ in FAILING])
def test_every_action_failing_is_retried_then_escalated(
    world: World, action: str, params: dict[str, Any],
) -> None:
    port = free_port()  # nothing listens there
    filled = {k: v.replace("{port}", str(port)) for k, v in params.items()}
    smtp = SmtpConfig(host="127.0.0.1", port=port, security="none",
                      from_address="tsuba@example.org", timeout_seconds=2)
    runner = world.runner(smtp=smtp, webhook_timeout=2)
    results = runner.run(playbook({"action": action, "params": filled},
                                  {"action": "incident_note",
                                   "params": {"incident": "{incident.id}", "text": "never"}}),
                         world.incident)
    assert [(r.status, r.attempts) for r in results] == [("failed", 3)]
    assert world.sleeps == [0.5, 1.0]
    escalated = [e for e in world.steps if e.attributes.get("status") == "failed"]
    assert len(escalated) == 1 and escalated[0].severity is Severity.HIGH
    assert escalated[0].attributes["step_action"] == action
    note = world.incidents.get(world.incident).history[-1]["note"]
    assert f"({action}) failed and needs a person" in note
    assert results[0].detail.split(": ", 1)[1] in note


def test_auto_approved_steps_act_at_once_and_are_audited_as_pre_approved(
    world: World,
) -> None:
    key = world.keys.create("svc")
    pb = playbook({"action": "revoke_api_key", "params": {"prefix": key.record.prefix}},
                  {"action": "block_ip", "params": {"ip": "{alert.group.src_ip}"}})
    results = world.runner().run(pb, world.incident)
    assert [r.status for r in results] == ["done", "done"]
    assert world.keys.get(key.record.prefix).status == "revoked"
    done = [e for e in world.steps if e.attributes.get("status") == "done"]
    assert all(e.attributes["approved_by"] == "playbook:respond@7 by carol" for e in done)
    assert all(e.attributes["pre_approved"] for e in done)


# -- e-mail through a real SMTP server ----------------------------------------------------------

@dataclass
class Tls:
    ca_file: Path
    cert_file: Path
    key_file: Path


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    """A throwaway CA and a server certificate for 127.0.0.1 and localhost."""
    where = tmp_path_factory.mktemp("tls")
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tsuba test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(minutes=5))
          .not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                       crl_sign=True, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False,
                                       decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                         critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"),
                x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    out = Tls(where / "ca.pem", where / "server.pem", where / "server.key")
    out.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    out.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    out.key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    return out


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


def _login(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"soar",
                                                                              b"s3cret")
    return AuthResult(success=ok, handled=False)  # False: the server answers 535


@pytest.fixture
def smtp_server(tls: Tls) -> Iterator[tuple[Inbox, int, int]]:
    """Two real SMTP servers: STARTTLS required before AUTH (port 1), implicit TLS (port 2)."""
    import ssl

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tls.cert_file, tls.key_file)
    inbox = Inbox()
    starttls = Controller(inbox, hostname="127.0.0.1", port=free_port(), tls_context=context,
                          require_starttls=True, authenticator=_login, auth_require_tls=True)
    implicit = Controller(inbox, hostname="127.0.0.1", port=free_port(), ssl_context=context,
                          authenticator=_login, auth_require_tls=False)
    starttls.start()
    implicit.start()
    try:
        yield inbox, starttls.port, implicit.port
    finally:
        starttls.stop()
        implicit.stop()


def _cfg(port: int, tls: Tls, **kw: Any) -> SmtpConfig:
    base: dict[str, Any] = {"host": "127.0.0.1", "port": port, "username": "soar",
                            "password_env": "TSUBA_TEST_SMTP_PASSWORD",
                            "from_address": "tsuba@example.org", "ca_file": str(tls.ca_file),
                            "timeout_seconds": 5}
    base.update(kw)
    return SmtpConfig(**base)


def test_email_over_starttls_and_implicit_tls_with_a_login(
    smtp_server: tuple[Inbox, int, int], tls: Tls, monkeypatch: pytest.MonkeyPatch,
) -> None:
    inbox, port, ssl_port = smtp_server
    monkeypatch.setenv("TSUBA_TEST_SMTP_PASSWORD", "s3cret")
    cfg = _cfg(port, tls, allowed_domains=["Example.org"])
    params = {"to": ["soc@example.org", "oncall@example.org"], "subject": "P1: leaked key",
              "text": "Incident 4: key tsk_abc used from 203.0.113.9.\n"}
    detail = send_email(cfg, build_message(cfg, params), cfg.password())
    assert "sent to soc@example.org, oncall@example.org via 127.0.0.1" in detail
    sender, rcpts, raw = inbox.messages[-1]
    assert sender == "tsuba@example.org" and rcpts == ["soc@example.org", "oncall@example.org"]
    msg = message_from_bytes(raw, policy=default_policy)
    assert msg["Subject"] == "P1: leaked key" and msg["Auto-Submitted"] == "auto-generated"
    assert "203.0.113.9" in msg.get_content()  # type: ignore[attr-defined]
    again = build_message(cfg, params)
    assert again["Message-ID"] == msg["Message-ID"]  # same content, same id

    implicit = _cfg(ssl_port, tls, security="ssl")
    send_email(implicit, build_message(implicit, {**params, "to": "soc@example.org"}),
               implicit.password())
    assert inbox.messages[-1][1] == ["soc@example.org"]
    with pytest.raises(InputError, match="not at an allowed domain"):
        build_message(cfg, {**params, "to": "attacker@evil.example"})


def test_email_refusals_are_clear(
    smtp_server: tuple[Inbox, int, int], tls: Tls, monkeypatch: pytest.MonkeyPatch,
) -> None:
    inbox, port, _ = smtp_server
    params = {"to": "soc@example.org", "subject": "s", "text": "t"}
    monkeypatch.setenv("TSUBA_TEST_SMTP_PASSWORD", "wrong")
    cfg = _cfg(port, tls)
    with pytest.raises(ConfigError, match="refused the login of 'soar' \\(535\\)"):
        send_email(cfg, build_message(cfg, params), cfg.password())
    monkeypatch.delenv("TSUBA_TEST_SMTP_PASSWORD")
    with pytest.raises(ConfigError, match="TSUBA_TEST_SMTP_PASSWORD is unset"):
        cfg.password()
    untrusted = _cfg(port, tls, ca_file=None, username=None, password_env=None)
    with pytest.raises(ConfigError, match=r"TLS with SMTP server .* failed"):
        send_email(untrusted, build_message(untrusted, params), None)
    plain = _cfg(port, tls, security="none", username=None, password_env=None)
    with pytest.raises(SmtpDeliveryError, match="answered 530"):  # STARTTLS required
        send_email(plain, build_message(plain, params), None)
    down = _cfg(free_port(), tls)
    with pytest.raises(SmtpDeliveryError, match="cannot deliver through SMTP server"):
        send_email(down, build_message(down, params), "x")
    assert inbox.messages == []


def test_email_auth_failure_and_server_down_are_retried_then_escalated(
    world: World, smtp_server: tuple[Inbox, int, int], tls: Tls,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    inbox, port, _ = smtp_server
    monkeypatch.setenv("TSUBA_TEST_SMTP_PASSWORD", "wrong")
    step = {"action": "email", "params": {"to": "soc@example.org",
                                          "subject": "incident {incident.id}",
                                          "text": "from {alert.group.src_ip}"}}
    results = world.runner(smtp=_cfg(port, tls)).run(playbook(step), world.incident)
    assert [(r.status, r.attempts) for r in results] == [("failed", 3)]
    assert "refused the login" in world.incidents.get(world.incident).history[-1]["note"]
    down = world.runner(smtp=_cfg(free_port(), tls))
    other = parse_playbook({"id": "other", "title": "t", "steps": [{"id": "mail", **step}]})
    assert down.run(other, world.incident)[0].status == "failed"
    assert "cannot deliver" in world.incidents.get(world.incident).history[-1]["note"]
    assert inbox.messages == []
    monkeypatch.setenv("TSUBA_TEST_SMTP_PASSWORD", "s3cret")
    third = parse_playbook({"id": "third", "title": "t", "steps": [{"id": "mail", **step}]})
    done = world.runner(smtp=_cfg(port, tls)).run(third, world.incident)
    assert done[0].status == "done"
    msg = message_from_bytes(inbox.messages[-1][2], policy=default_policy)
    assert msg["Subject"] == f"incident {world.incident}"


def test_smtp_password_from_a_key_store_encrypted_file(
    world: World, smtp_server: tuple[Inbox, int, int], tls: Tls,
) -> None:
    inbox, port, _ = smtp_server
    platform = world.platform
    path = store_smtp_password(platform.settings, platform.keys, "127.0.0.1", "s3cret")
    assert b"s3cret" not in path.read_bytes() and path.stat().st_mode & 0o077 == 0
    cfg = _cfg(port, tls, password_env=None, password_file="credentials/smtp.tse")
    email = world.actions(smtp=cfg)["email"]
    assert "sent to soc@example.org" in email({"to": "soc@example.org", "subject": "s",
                                                "text": "t"})
    assert len(inbox.messages) == 1
    elsewhere = _cfg(port, tls, host="localhost", password_env=None,
                     password_file=str(path))
    with pytest.raises(DecryptionError):
        elsewhere.password(keys=platform.keys)  # bound to the host it was stored for


@pytest.mark.parametrize(
    ("fields", "message"),
    [({"username": "u"}, "exactly one of password_env or password_file"),
     ({"username": "u", "password_env": "A", "password_file": "f"}, "exactly one"),
     ({"password_env": "A"}, "no username"),
     ({"username": "u", "password_env": "A", "security": "none"}, "in clear"),
     ({"from_address": "not an address"}, "not an e-mail address"),
     ({"password": "plain"}, "Extra inputs"),
     ({"port": 0}, "greater than or equal to 1")],
)
def test_smtp_config_refusals(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SmtpConfig(**{"host": "mail.example.org", "from_address": "t@example.org", **fields})


@given(subject=st.text(max_size=250), to=st.text(max_size=80))
@settings(max_examples=300, deadline=None)
def test_messages_never_carry_injected_headers(subject: str, to: str) -> None:
    cfg = SmtpConfig(host="mail.example.org", security="none", from_address="t@example.org")
    try:
        msg = build_message(cfg, {"to": to, "subject": subject, "text": "body"})
    except InputError:
        return
    raw = msg.as_bytes()
    head = raw.split(b"\n\n", 1)[0].decode("ascii", "replace")
    names = [line.split(":", 1)[0] for line in head.splitlines() if line[:1] not in " \t"]
    assert sorted(names) == sorted(["From", "To", "Subject", "Date", "Message-ID",
                                    "Auto-Submitted", "Content-Type",
                                    "Content-Transfer-Encoding", "MIME-Version"])
    parsed = message_from_bytes(raw, policy=default_policy)
    assert str(parsed["Subject"]) == subject.strip() or str(parsed["Subject"]) == subject


def test_email_without_smtp_fails_loudly(world: World) -> None:
    with pytest.raises(ConfigError, match=r"configure soar\.smtp"):
        world.actions()["email"]({"to": "a@example.org", "subject": "s", "text": "t"})


# -- a real gateway refuses what the actions block ---------------------------------------------

class _Server:
    def __init__(self, app: Any) -> None:
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port,
                                                    log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=lambda: asyncio.run(self.server.serve()),
                                       daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "server did not start"
            time.sleep(0.01)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)


def _until(check: Any, seconds: float = 10.0) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def test_gateway_refuses_blocked_addresses_and_principals(world: World, home: Path) -> None:
    platform = world.platform
    with _Server(DemoUpstream()) as upstream:
        settings_ = load_settings(home, gateway={
            "upstreams": {"demo": {"base_url": upstream + "/v1"}},
            "models": {"demo": {"upstream": "demo"}},
            "allowed_upstream_hosts": [upstream.split("//")[1]]})
        world.identity.create_role("user")
        world.identity.add_permission("user", "model:invoke", "model/demo")
        world.identity.bind("user", "svc")
        key = world.keys.create("svc")
        gw_platform = Platform.open(settings_)
        try:
            with _Server(create_app(settings_, gw_platform)) as gateway:
                def ask() -> httpx.Response:
                    return httpx.post(gateway + "/v1/chat/completions", timeout=10,
                                      headers={"authorization": f"Bearer {key.key}"},
                                      json={"model": "demo",
                                            "messages": [{"role": "user", "content": "hi"}]})

                assert ask().status_code == 200
                actions = world.actions()
                actions["block_ip"]({"ip": "127.0.0.1"})
                refused = _until(lambda: (r := ask()).status_code == 403 and r)
                assert refused, "the gateway never refused the blocked address"
                assert "blocked" in refused.json()["error"]["message"]
                unblock_network(platform.engine, "127.0.0.1")
                assert _until(lambda: ask().status_code == 200)
                actions["block_principal"]({"principal": "svc"})
                denied = ask()
                assert denied.status_code == 401 and "disabled" in denied.text
        finally:
            gw_platform.close()


# -- the CLI ----------------------------------------------------------------------------------

ALL_STEPS = """
id: full-response
title: Every built-in action
author: carol
version: "2"
steps:
  - {id: note, action: incident_note, params: {incident: "{incident.id}", text: "seen"}}
  - {id: hook, action: webhook, params: {url: "https://hooks.example.org/x", text: "P1"}}
  - {id: mail, action: email, params: {to: soc@example.org, subject: "incident {incident.id}",
     text: "from {alert.src_ip}"}}
  - {id: revoke, action: revoke_api_key, params: {prefix: "{alert.group.credential_id}"}}
  - {id: rotate, action: rotate_api_key, params: {prefix: "{alert.group.credential_id}"}}
  - {id: principal, action: block_principal, params: {principal: "{alert.actor}"},
     when: {alert.group.actor: {exists: true}}}
  - {id: ip, action: block_ip, approval: auto,
     params: {ip: "{alert.src_ip}", for: 24h, incident: "{incident.id}"}}
  - {id: model, action: quarantine_model, params: {model: "llama:1", reason: "r"}}
  - {id: key, action: rotate_key, params: {key: data, from_version: 1}}
"""


def test_cli_dry_run_lists_every_action_with_its_rendered_parameters(
    cli, home: Path, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:  # type: ignore[no-untyped-def]
    import json

    monkeypatch.setenv("TSUBA_DATABASE_URL", db_url)
    assert cli("init").code == 0
    now = dt.datetime.now(dt.UTC)
    lines = [json.dumps({"time": (now - dt.timedelta(minutes=30 - i)).isoformat(),
                         "class": "authentication", "outcome": "success", "actor": "svc",
                         "src_ip": f"10.0.0.{i + 1}", "credential_id": "tsk_" + "b" * 13})
             for i in range(6)]
    lines.append(json.dumps({"time": (now - dt.timedelta(minutes=5)).isoformat(),
                             "class": "authentication", "outcome": "success", "actor": "svc",
                             "src_ip": "203.0.113.50", "credential_id": "tsk_" + "b" * 13}))
    events = tmp_path / "leak.jsonl"
    events.write_text("\n".join(lines) + "\n", encoding="utf-8")
    filed = cli("soar", "ingest", str(events), "--format", "json").json()["alerts"]
    incident = str(filed[0]["incident"])
    pb = tmp_path / "full.yaml"
    pb.write_text(ALL_STEPS, encoding="utf-8")

    plan = cli("soar", "playbook", "run", str(pb), "--incident", incident, "--dry-run",
               "--format", "json")
    assert plan.code == 0, plan
    steps = {s["step"]: s for s in plan.json()["steps"]}
    assert [s["status"] for s in steps.values()] == ["planned"] * 5 + ["skipped"] + \
        ["planned"] * 3
    assert steps["mail"]["params"] == {"to": "soc@example.org",
                                       "subject": f"incident {incident}",
                                       "text": "from 203.0.113.50"}
    assert steps["rotate"]["params"] == {"prefix": "tsk_" + "b" * 13}
    assert steps["principal"]["params"] == {"principal": "svc"}  # shown, though skipped
    assert steps["ip"]["params"] == {"ip": "203.0.113.50", "for": "24h", "incident": incident}
    assert "pre-approved by playbook:full-response@2 by carol" in steps["ip"]["detail"]
    assert "second person" in steps["key"]["detail"] and "second person" not in \
        steps["mail"]["detail"]
    text = cli("soar", "playbook", "run", str(pb), "--incident", incident, "--dry-run")
    assert text.code == 0 and "203.0.113.50" in text.stdout and "quarantine_model" in \
        text.stdout
    exported = tmp_path / "full.json"
    exported.write_text(cli("soar", "playbook", "export", str(pb)).stdout, encoding="utf-8")
    back = cli("soar", "playbook", "import", str(exported))
    assert back.code == 0 and "approval: auto" in back.stdout and "author: carol" in back.stdout
    # nothing was done by the dry runs
    assert cli("soar", "show", incident, "--format", "json").json()["history"][-1][
        "action"] == "open"


def test_cli_blocklist_add_list_remove(
    cli, home: Path, db_url: str, monkeypatch: pytest.MonkeyPatch,
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("TSUBA_DATABASE_URL", db_url)
    assert cli("init").code == 0
    added = cli("soar", "blocklist", "add", "203.0.113.0/24", "--reason", "scanner",
                "--for", "2h", "--format", "json")
    assert added.code == 0, added
    assert added.json()["created"] and added.json()["expires_at"] is not None
    again = cli("soar", "blocklist", "add", "203.0.113.0/24", "--reason", "x")
    assert again.code == 0 and "already blocked" in again.stdout
    listed = cli("soar", "blocklist", "list", "--format", "json").json()
    assert [(b["network"], b["reason"]) for b in listed] == [("203.0.113.0/24", "scanner")]
    wide = cli("soar", "blocklist", "add", "0.0.0.0/0", "--reason", "x")
    assert wide.code == 2 and wide.stderr.startswith("error: ") and "too wide" in wide.stderr
    assert cli("soar", "blocklist", "remove", "203.0.113.0/24").code == 0
    gone = cli("soar", "blocklist", "remove", "203.0.113.0/24")
    assert gone.code == 2 and "not on the block list" in gone.stderr
    assert cli("soar", "blocklist", "list", "--format", "json").json() == []
    audit = cli("audit", "tail", "-n", "20", "--format", "json").json()
    changes = [r["event"]["attributes"].get("change") for r in audit
               if r["event"].get("resource", "").startswith("ip/")]
    assert changes == ["block_ip", "unblock_ip"]


def test_rotated_keys_dir_comes_from_settings(tmp_path: Path) -> None:
    from tsuba.core.config import load_settings
    from tsuba.soar.actions import rotated_keys_dir

    home = tmp_path / "home"
    assert rotated_keys_dir(load_settings(home)) is None  # unset: the secret is never kept
    relative = load_settings(home, soar={"rotated_keys_dir": "rotated"})
    assert rotated_keys_dir(relative) == relative.home / "rotated"
    absolute = load_settings(home, soar={"rotated_keys_dir": str(tmp_path / "vault")})
    assert rotated_keys_dir(absolute) == tmp_path / "vault"


def test_contain_incident_marks_it_contained_once(world: World) -> None:
    from tsuba.soar.incidents import State

    contain = world.actions()["contain_incident"]
    assert not contain.destructive
    assert contain({"incident": str(world.incident), "note": "key revoked"}) == \
        f"incident {world.incident} contained"
    assert world.incidents.get(world.incident).state is State.CONTAINED
    assert "already contained" in contain({"incident": str(world.incident)})
    with pytest.raises(InputError, match="needs 'incident'"):
        contain({"incident": "{incident.id}"})
