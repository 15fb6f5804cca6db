"""Events reach a real rsyslog as RFC 5424 syslog carrying CEF, over TCP and UDP."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from soar_events import ev

from tsuba.soar.siem.sinks import ENCODERS, SyslogSink

RSYSLOGD = shutil.which("rsyslogd") or (
    "/usr/sbin/rsyslogd" if Path("/usr/sbin/rsyslogd").exists() else None
)
pytestmark = pytest.mark.skipif(RSYSLOGD is None, reason="rsyslog is not installed")


def _free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def rsyslog(tmp_path: Path) -> Iterator[tuple[int, int, Path]]:
    tcp, udp = _free_port(socket.SOCK_STREAM), _free_port(socket.SOCK_DGRAM)
    out = tmp_path / "received.log"
    conf = tmp_path / "rsyslog.conf"
    conf.write_text(f"""
global(workDirectory="{tmp_path}")
module(load="imtcp")
module(load="imudp")
input(type="imtcp" address="127.0.0.1" port="{tcp}")
input(type="imudp" address="127.0.0.1" port="{udp}")
template(name="raw" type="string" string="%rawmsg%\\n")
*.* action(type="omfile" file="{out}" template="raw")
""", encoding="utf-8")
    assert RSYSLOGD is not None
    proc = subprocess.Popen([RSYSLOGD, "-n", "-f", str(conf), "-i", str(tmp_path / "pid")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:  # wait until it listens
        try:
            socket.create_connection(("127.0.0.1", tcp), timeout=0.2).close()
            break
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"rsyslogd exited: {proc.stdout.read() if proc.stdout else ''}")
            time.sleep(0.1)
    try:
        yield tcp, udp, out
    finally:
        proc.terminate()
        proc.wait(10)


def _wait_lines(path: Path, count: int) -> list[str]:
    deadline = time.monotonic() + 15
    lines: list[str] = []
    while time.monotonic() < deadline:
        lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
        if len(lines) >= count:
            break
        time.sleep(0.1)
    return lines


def test_cef_over_syslog_reaches_rsyslog(rsyslog: tuple[int, int, Path]) -> None:
    tcp, udp, out = rsyslog
    events = [ev(i, actor=f"user{i}", message=f"hostile\nline |= {i}", src_ip="203.0.113.9")
              for i in range(3)]
    encode = ENCODERS["syslog-cef"]
    sink = SyslogSink("127.0.0.1", tcp, transport="tcp")
    for event in events[:2]:
        sink.send(encode(event))
    sink.close()
    SyslogSink("127.0.0.1", udp, transport="udp").send(encode(events[2]))
    lines = _wait_lines(out, 3)
    assert len(lines) == 3, lines
    for event in events:
        [line] = [x for x in lines if f'id="{event.id}"' in x]
        assert line.startswith("<")
        assert "CEF:0|tsuba|tsuba|" in line
        assert f"suser={event.actor}" in line
        assert f"msg=hostile\\nline |\\= {event.actor[-1]}" in line  # escaped, one record
