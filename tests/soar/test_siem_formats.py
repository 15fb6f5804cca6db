"""SIEM forms of events: CEF and RFC 5424 parse back to exactly what went in, whatever an
attacker puts in a field; ECS bulk and Splunk HEC carry the right fields."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tsuba.core.events import SecurityEvent, Severity
from tsuba.soar.siem import cef, ecs, ecs_bulk, splunk_hec, syslog_5424
from tsuba.soar.siem.formats import severity_from_cef
from tsuba.soar.siem.ocsf_schema import validate

HOSTILE = 'al|ice=x\\ "] [evil@1 a="b"]\nCEF:0|forged|\r\x00é'


def event(**fields: object) -> SecurityEvent:
    data = {"class": "authentication", "activity": "logon", "outcome": "failure",
            "severity": "high", "time": "2026-03-01T12:00:00.25Z", "actor": "alice",
            "src_ip": "203.0.113.9", "resource": "/v1/chat", "message": "bad key",
            "correlation_id": "c-1", **fields}
    return SecurityEvent.from_dict(data)


def parse_cef(line: str) -> tuple[list[str], dict[str, str]]:
    """A strict reader of the CEF tsuba writes: 6 escaped header fields, then key=value."""
    assert line.startswith("CEF:0|") and "\n" not in line and "\r" not in line
    fields: list[str] = []
    cur, i, rest = "", 6, line
    while len(fields) < 6:
        ch = rest[i]
        if ch == "\\":
            cur += rest[i + 1]
            i += 2
        elif ch == "|":
            fields.append(cur)
            cur, i = "", i + 1
        else:
            cur += ch
            i += 1
    ext_text = rest[i:]
    keys = list(re.finditer(r"(?:^| )([A-Za-z0-9]+)=", ext_text))
    ext: dict[str, str] = {}
    for n, m in enumerate(keys):
        # An escaped "=" is "\=": a key match right after a backslash is not a key.
        end = keys[n + 1].start() if n + 1 < len(keys) else len(ext_text)
        raw = ext_text[m.end():end]
        ext[m.group(1)] = re.sub(r"\\(.)", lambda x: {"n": "\n", "r": "\r"}.get(
            x.group(1), x.group(1)), raw)
    return fields, ext


def test_cef_fields() -> None:
    fields, ext = parse_cef(cef(event()))
    assert fields[:5] == ["tsuba", "tsuba", fields[2], "authentication:logon", "bad key"]
    assert fields[5] == "7" and severity_from_cef(int(fields[5])) is Severity.HIGH
    assert ext["suser"] == "alice" and ext["src"] == "203.0.113.9"
    assert ext["rt"] == str(int(datetime(2026, 3, 1, 12, 0, 0, 250000,
                                         tzinfo=UTC).timestamp() * 1000))
    assert ext["cs1"] == "c-1" and ext["outcome"] == "failure" and ext["msg"] == "bad key"


text = st.lists(st.sampled_from([*"ab |=\\\n\r\"][=x", "é", "CEF:0|", "\x00", "\ud800"]),
                min_size=1, max_size=20).map("".join)


@settings(max_examples=300, deadline=None)
@given(actor=text, message=text, resource=text)
def test_cef_round_trips_hostile_values(actor: str, message: str, resource: str) -> None:
    ev = event(actor=actor, message=message, resource=resource)
    line = cef(ev)
    fields, ext = parse_cef(line)
    assert len(fields) == 6
    assert ext["suser"] == actor
    assert ext["msg"] == message
    assert ext["request"] == resource
    name = (message.strip() or "authentication:logon")[:512]
    assert fields[4] == name.replace("\r", " ").replace("\n", " ")


SYSLOG = re.compile(
    rb"^<(?P<pri>\d{1,3})>1 (?P<ts>\S+) (?P<host>[\x21-\x7e]{1,255}) (?P<app>[\x21-\x7e]{1,48}) "
    rb"(?P<proc>[\x21-\x7e]{1,128}) (?P<msgid>[\x21-\x7e]{1,32}) (?P<sd>\[.*\]) "
    rb"\xef\xbb\xbf(?P<msg>[^\n]*)$", re.S)


def parse_sd(sd: str) -> tuple[str, dict[str, str]]:
    """One SD-ELEMENT, strictly: the element must end where the data ends."""
    value = r'"((?:[^"\\\]\x00-\x1f]|\\["\\\]]|\\x[0-9a-f]{2})*)"'
    m = re.match(r'^\[([^ \]"=]+)((?: [^ \]"=]+=' + value + r")*)\]$", sd)
    assert m, sd

    def unescape(v: str) -> str:
        return re.sub(r'\\(["\\\]]|x[0-9a-f]{2})',
                      lambda x: chr(int(x.group(1)[1:], 16)) if x.group(1)[0] == "x"
                      else x.group(1), v)

    params = {k: unescape(v) for k, v in re.findall(r" ([^ \]\"=]+)=" + value, m.group(2))}
    return m.group(1), params


def test_syslog_5424_shape_and_priority() -> None:
    raw = syslog_5424(event(), hostname="gw-1")
    m = SYSLOG.match(raw)
    assert m, raw
    assert int(m["pri"]) == 13 * 8 + 3  # log audit, error (HIGH)
    assert m["ts"] == b"2026-03-01T12:00:00.250000Z"
    assert m["host"] == b"gw-1" and m["app"] == b"tsuba" and m["msgid"] == b"authentication"
    sd_id, params = parse_sd(m["sd"].decode())
    assert sd_id == "tsuba@32473" and params["actor"] == "alice"
    assert m["msg"].decode() == "bad key"
    with pytest.raises(ValueError, match="facility"):
        syslog_5424(event(), facility=24)


@settings(max_examples=300, deadline=None)
@given(actor=text, message=text, host=text)
def test_syslog_hostile_values_stay_in_their_field(actor: str, message: str, host: str) -> None:
    raw = syslog_5424(event(actor=actor, message=message), hostname=host)
    m = SYSLOG.match(raw)
    assert m, raw
    _, params = parse_sd(m["sd"].decode())
    assert params["actor"] == actor.encode("utf-8", "replace").decode()
    assert m["msg"].decode() == " ".join(message.split()).encode("utf-8", "replace").decode()
    assert b"\n" not in raw


def test_ecs_and_bulk() -> None:
    ev = event(attributes={"reason": "expired"})
    doc = ecs(ev)
    assert doc["@timestamp"] == "2026-03-01T12:00:00.250000Z"
    assert doc["event"]["category"] == ["authentication"] and doc["event"]["kind"] == "event"
    assert doc["event"]["outcome"] == "failure" and doc["user"]["name"] == "alice"
    assert doc["source"]["ip"] == "203.0.113.9" and doc["trace"]["id"] == "c-1"
    finding = ecs(event(**{"class": "detection_finding"}))
    assert finding["event"]["kind"] == "alert"
    body = ecs_bulk([ev, ev], "tsuba-events")
    lines = body.decode().splitlines()
    assert len(lines) == 4 and body.endswith(b"\n")
    assert json.loads(lines[0]) == {"create": {"_index": "tsuba-events", "_id": ev.id}}
    assert json.loads(lines[1])["event"]["id"] == ev.id
    assert ecs_bulk([], "x") == b""


def test_splunk_hec_carries_ocsf() -> None:
    payload = splunk_hec(event(), host="gw-1", index="security")
    assert payload["time"] == pytest.approx(datetime(2026, 3, 1, 12, 0, 0, 250000,
                                                     tzinfo=UTC).timestamp())
    assert payload["event"]["class_uid"] == 3002 and payload["sourcetype"] == "tsuba:ocsf"
    assert payload["host"] == "gw-1" and payload["index"] == "security"
    assert validate(json.loads(json.dumps(payload))["event"]) == []


def test_ocsf_of_hostile_values_stays_valid_and_intact() -> None:
    ev = event(actor=HOSTILE, message=HOSTILE, src_ip=HOSTILE, resource=HOSTILE)
    data = json.loads(json.dumps(ev.to_ocsf()))
    assert validate(data) == []
    assert data["user"]["name"] == HOSTILE and data["message"] == HOSTILE
    assert data["src_endpoint"] == {"name": HOSTILE}  # not an address: never put in "ip"
    assert data["time"] == int(datetime(2026, 3, 1, 12, 0, 0, 250000,
                                        tzinfo=UTC).timestamp() * 1000)


def test_hostile_constant_is_escaped_everywhere() -> None:
    ev = event(actor=HOSTILE, message=HOSTILE)
    _, ext = parse_cef(cef(ev))
    assert ext["suser"] == HOSTILE
    m = SYSLOG.match(syslog_5424(ev))
    assert m and parse_sd(m["sd"].decode())[1]["actor"] == HOSTILE
