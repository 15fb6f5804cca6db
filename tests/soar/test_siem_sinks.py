"""SIEM delivery through real sockets, files and HTTP, and at least once through the bus."""

from __future__ import annotations

import datetime as dt
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from soar_events import ev
from sqlalchemy import Engine

from tsuba.core.bus import Bus
from tsuba.core.errors import InputError, UpstreamError
from tsuba.soar.siem.ocsf_schema import InvalidOcsfEvent, validate
from tsuba.soar.siem.sinks import (
    HttpSink,
    RotatingFileSink,
    SiemForwarder,
    SyslogSink,
    dead_letter_to,
    hec_line,
    ocsf_line,
)


def test_file_sink_rotates_and_keeps_order(tmp_path: Path) -> None:
    path = tmp_path / "siem" / "events.ndjson"
    sink = RotatingFileSink(path, max_bytes=100, backups=2)
    for i in range(7):
        sink.send(f'{{"n":{i},"pad":"{"x" * 30}"}}\n'.encode())
    current = path.read_text().splitlines()
    older = path.with_name("events.ndjson.1").read_text().splitlines()
    oldest = path.with_name("events.ndjson.2").read_text().splitlines()
    numbers = [json.loads(line)["n"] for line in oldest + older + current]
    assert numbers == sorted(numbers) and numbers[-1] == 6
    assert not path.with_name("events.ndjson.3").exists()
    assert all(p.stat().st_size <= 100 for p in path.parent.iterdir())
    with pytest.raises(InputError):
        RotatingFileSink(path, max_bytes=0)


def _frames(data: bytes) -> list[bytes]:
    """RFC 6587 octet-counted frames."""
    frames = []
    while data:
        length, _, rest = data.partition(b" ")
        frames.append(rest[: int(length)])
        data = rest[int(length):]
    return frames


class _TcpServer:
    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.data = b""
        self.tls = tls
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        if self.tls is not None:
            try:
                conn = self.tls.wrap_socket(conn, server_side=True)
            except ssl.SSLError:
                conn.close()  # the client refused our certificate: nothing to read
                return
        with conn:
            while chunk := conn.recv(65536):
                self.data += chunk

    def close(self) -> None:
        self.sock.close()


def test_syslog_tcp_octet_counting() -> None:
    server = _TcpServer()
    sink = SyslogSink("127.0.0.1", server.port, transport="tcp")
    events = [ev(i, actor=f"a{i}", message=f"multi\nline {i}") for i in range(3)]
    for event in events:
        sink.send(ocsf_line(event))
    sink.close()
    server.thread.join(5)
    frames = _frames(server.data)
    assert [json.loads(f)["metadata"]["uid"] for f in frames] == [e.id for e in events]
    server.close()


def test_syslog_udp_datagrams() -> None:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(5)
    sink = SyslogSink("127.0.0.1", receiver.getsockname()[1], transport="udp")
    sink.send(b"<110>1 - - tsuba - - - hello\n")
    assert receiver.recvfrom(65536)[0] == b"<110>1 - - tsuba - - - hello"
    sink.close()
    receiver.close()


def _self_signed(tmp: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), False)
            .sign(key, hashes.SHA256()))
    cert_pem = tmp / "cert.pem"
    key_pem = tmp / "key.pem"
    cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_pem.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert_pem, key_pem)
    client = ssl.create_default_context(cafile=str(cert_pem))
    return server, client


def test_syslog_tls_verifies_the_server(tmp_path: Path) -> None:
    server_ctx, client_ctx = _self_signed(tmp_path)
    server = _TcpServer(tls=server_ctx)
    sink = SyslogSink("localhost", server.port, transport="tls", tls_context=client_ctx)
    sink.send(b"<110>1 - - tsuba - - - over tls\n")
    sink.close()
    server.thread.join(5)
    assert _frames(server.data) == [b"<110>1 - - tsuba - - - over tls"]
    server.close()
    # A server whose certificate the client does not trust is refused.
    untrusted = _TcpServer(tls=server_ctx)
    strict = SyslogSink("localhost", untrusted.port, transport="tls")
    with pytest.raises(UpstreamError, match="syslog tls"):
        strict.send(b"x\n")
    untrusted.close()


def test_syslog_unreachable_raises_for_a_retry() -> None:
    probe = socket.create_server(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    sink = SyslogSink("127.0.0.1", port, transport="tcp", timeout=1)
    with pytest.raises(UpstreamError, match="syslog tcp"):
        sink.send(b"x\n")


class _Http(BaseHTTPRequestHandler):
    bodies: ClassVar[list[bytes]] = []
    fail: ClassVar[list[int]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if _Http.fail:
            self.send_response(_Http.fail.pop())
        else:
            _Http.bodies.append(body)
            self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_url() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _Http)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Http.bodies.clear()
    yield f"http://127.0.0.1:{server.server_port}/ingest"
    server.shutdown()
    server.server_close()


def test_http_sink(http_url: str) -> None:
    sink = HttpSink(http_url, headers={"authorization": "Splunk token"})
    sink.send(b'{"event": 1}')
    assert _Http.bodies == [b'{"event": 1}']
    _Http.fail.append(503)
    with pytest.raises(UpstreamError, match="HTTP 503"):
        sink.send(b"{}")
    sink.close()
    with pytest.raises(InputError, match="http"):
        HttpSink("ftp://x")


def test_forwarder_on_the_bus_delivers_at_least_once(engine: Engine, http_url: str) -> None:
    bus = Bus(engine, poll_interval=0.05, backoff_initial=0.001, backoff_max=0.01)
    try:
        forwarder = SiemForwarder(HttpSink(http_url), "hec")
        bus.subscribe("siem.splunk", forwarder)
        _Http.fail.extend([500, 502])  # the endpoint fails twice, then recovers
        bus.start()
        events = [ev(i, actor=f"a{i}") for i in range(5)]
        bus.publish_many(events)
        assert bus.drain(20)
    finally:
        bus.stop(timeout=5)
    received = [json.loads(b)["event"]["metadata"]["uid"] for b in _Http.bodies]
    assert set(received) == {e.id for e in events}
    assert received == sorted(received, key=[e.id for e in events].index)
    with pytest.raises(InputError, match="unknown SIEM form"):
        SiemForwarder(HttpSink(http_url), "xml")


def test_forwarder_forms(tmp_path: Path) -> None:
    for form in ("ocsf", "cef", "syslog", "syslog-cef", "hec", "ecs-bulk"):
        sink = RotatingFileSink(tmp_path / f"{form}.out")
        forwarder = SiemForwarder(sink, form)
        event = ev(0, actor="alice", message="m")

        class _D:
            pass

        delivery: Any = _D()
        delivery.event = event
        forwarder(delivery)
        text = (tmp_path / f"{form}.out").read_bytes()
        assert event.id.encode() in text, form
        assert text.endswith(b"\n")
    assert b"CEF:0|tsuba" in (tmp_path / "syslog-cef.out").read_bytes()
    assert validate(json.loads((tmp_path / "ocsf.out").read_bytes())) == []
    assert validate(json.loads((tmp_path / "hec.out").read_bytes())["event"]) == []


def _stale() -> Any:
    """An event from a clock set to 1990: no SIEM would file it where it belongs."""
    return ev(0, actor="mallory").model_copy(
        update={"time": dt.datetime(1990, 1, 1, tzinfo=dt.UTC)})


def test_ocsf_encoders_refuse_events_that_break_the_schema() -> None:
    stale = _stale()
    for encode in (ocsf_line, hec_line):
        with pytest.raises(InvalidOcsfEvent, match=r"time: .* not epoch milliseconds") as err:
            encode(stale)
        assert stale.id in str(err.value) and err.value.problems
        assert stale.id.encode() in encode(stale, validate=False)
    line = json.loads(hec_line(ev(0, actor="a"), index="security", host="gw-1"))
    assert (line["index"], line["host"]) == ("security", "gw-1")


def test_invalid_ocsf_is_dead_lettered_with_its_problems(engine: Engine, http_url: str) -> None:
    bus = Bus(engine, poll_interval=0.05, max_attempts=2, backoff_initial=0.001,
              backoff_max=0.01)
    stale = _stale()
    good = [ev(i, actor=f"a{i}") for i in range(3)]
    try:
        bus.subscribe("siem.ocsf", SiemForwarder(HttpSink(http_url), "ocsf"))
        bus.start()
        bus.publish_many([good[0], stale, *good[1:]])
        assert bus.drain(20)
    finally:
        bus.stop(timeout=5)
    docs = [json.loads(b) for b in _Http.bodies]
    assert all(validate(d) == [] for d in docs)
    sent = [d["metadata"]["uid"] for d in docs]
    assert stale.id not in sent and [e.id for e in good] == sent[:3]
    [dead] = bus.store.dead_letters("siem.ocsf")
    assert dead.event_id == stale.id
    assert dead.error.startswith("InvalidOcsfEvent:") and "not epoch milliseconds" in dead.error
    # The bus's notice about it is a Detection Finding, and valid: the SIEM hears of it.
    [notice] = docs[3:]
    assert notice["class_uid"] == 2004 and stale.id in notice["message"] + json.dumps(notice)


def test_invalid_ocsf_is_dead_lettered_at_once_on_a_patient_bus(
    engine: Engine, http_url: str
) -> None:
    """A bus that retries for an hour (an outage is only lag) must not spend that hour on an
    event that no retry can fix, holding up everything after it."""
    bus = Bus(engine, poll_interval=0.05, max_attempts=70, backoff_initial=30,
              backoff_max=60)
    stale = _stale()
    good = [ev(i, actor=f"a{i}") for i in range(3)]
    forwarder = SiemForwarder(HttpSink(http_url), "ocsf",
                              on_invalid=dead_letter_to(bus.store, "siem.ocsf"))
    try:
        bus.subscribe("siem.ocsf", forwarder)
        bus.start()
        bus.publish_many([good[0], stale, *good[1:]])
        assert bus.drain(20)
    finally:
        bus.stop(timeout=5)
    docs = [json.loads(b) for b in _Http.bodies]
    assert [d["metadata"]["uid"] for d in docs[:3]] == [e.id for e in good]
    assert all(validate(d) == [] for d in docs)
    [dead] = bus.store.dead_letters("siem.ocsf")
    assert (dead.event_id, dead.attempts) == (stale.id, 1)
    assert dead.error.startswith("InvalidOcsfEvent:") and "not epoch milliseconds" in dead.error
    [notice] = docs[3:]
    assert notice["class_uid"] == 2004 and "not epoch milliseconds" in notice["message"]
    assert (forwarder.sent, forwarder.invalid) == (4, 1)


def test_validation_can_be_turned_off_per_forwarder(engine: Engine, http_url: str) -> None:
    bus = Bus(engine, poll_interval=0.05, max_attempts=1)
    stale = _stale()
    try:
        bus.subscribe("siem.raw", SiemForwarder(HttpSink(http_url), "ocsf", validate=False))
        bus.start()
        bus.publish(stale)
        assert bus.drain(20)
    finally:
        bus.stop(timeout=5)
    assert [json.loads(b)["metadata"]["uid"] for b in _Http.bodies] == [stale.id]
    assert bus.store.dead_letters("siem.raw") == []
