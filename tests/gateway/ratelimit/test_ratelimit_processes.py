"""The key guarantee: limits hold exactly across separate processes sharing one Redis.

Two real gateway processes fire 100 concurrent admissions each (200 in all) at one Redis;
whatever the interleaving, exactly K are admitted for a limit that allows K: no overshoot
(the failure of gateways that check a budget first and charge it after the response) and no
undershoot either.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from ratelimit_support import redis_offset

WORKER = Path(__file__).with_name("ratelimit_worker.py")
PER_PROCESS = 100


def race(url: str, prefix: str, config: dict, principals: tuple[str, str], tokens: int):  # type: ignore[no-untyped-def]
    offset = redis_offset(url)
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), url, prefix, str(offset), json.dumps(config),
             principal, str(PER_PROCESS), str(tokens)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for principal in principals
    ]
    control = redis.Redis.from_url(url)
    try:
        for _ in procs:  # both processes are connected and waiting
            assert control.blpop([prefix + "ready"], timeout=60) is not None, "worker not ready"
        control.rpush(prefix + "go", *["go"] * len(procs))
        outputs = []
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
            outputs.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
        control.close()
    return outputs


def test_global_request_limit_holds_exactly_across_two_processes(redis_url, prefix) -> None:
    k = 37  # 37 per hour, all of them allowed at once, for the whole gateway
    outputs = race(redis_url, prefix, {"principal_defaults": {},
                                       "total": {"requests": k, "interval_seconds": 3600}},
                   ("alice", "bob"), tokens=10)
    assert sum(o["admitted"] for o in outputs) == k
    refusals = {r for o in outputs for r in o["refused"]}
    assert refusals == {"requests (37 per 3600 s, burst 37) for the gateway"}


def test_token_budget_holds_exactly_across_two_processes(redis_url, prefix) -> None:
    k = 53  # a day budget of 53 requests' worth of tokens, shared by both processes
    outputs = race(redis_url, prefix, {"principal_defaults": {"tokens_per_day": k * 120}},
                   ("alice", "alice"), tokens=120)
    assert sum(o["admitted"] for o in outputs) == k
    assert {r for o in outputs for r in o["refused"]} == {"tokens per day for principal alice"}
    # and what Redis holds is exactly the reserved total: nothing charged twice or lost
    client = redis.Redis.from_url(redis_url)
    try:
        (key,) = client.keys(prefix.replace("{", "\\{").replace("}", "\\}") + "p/alice/*")
        assert int(client.hget(key, "r")) == k * 120
        assert int(client.hget(key, "u") or 0) == 0
        assert client.hlen(prefix + "reservations") == k
    finally:
        client.close()


@pytest.mark.parametrize("slots", [1, 11])
def test_concurrency_limit_holds_exactly_across_two_processes(redis_url, prefix, slots) -> None:
    outputs = race(redis_url, prefix, {"principal_defaults": {}, "model_defaults": {
        "concurrent": slots}}, ("alice", "bob"), tokens=0)
    assert sum(o["admitted"] for o in outputs) == slots
