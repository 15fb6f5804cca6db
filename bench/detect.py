"""Detection engine: events per second through the built-in rule pack and detection latency.

Traffic of 10,000 distinct principals (API calls, logins from each principal's own network,
occasional failures, limit refusals, guard findings) with attacks mixed in: credential
stuffing, stuffing followed by a login, a leaked key used from a new network, bursts of
limit refusals, repeated prompt injection, secrets in outputs, model-extraction volume.

Side by side, on the same events in one process on one core:
- the built-in pack (tsuba);
- the engine with no rules (the floor of dispatching an event);
- parsing the events from JSON lines (``SecurityEvent.from_json``), which a replay pays too.

Also the per-principal anomaly baselines on three days of generated working-hours traffic
with abuse injected on the last: false-positive rate per principal-minute, detection rate.

Latency is the time from handing an event to the engine to getting its alerts back (the
engine runs inline, so this is the detection latency an in-process subscriber adds), as
percentiles over every event and over the events that raised an alert.

    python bench/detect.py            # full run (500,000 events)
    python bench/detect.py --quick    # a few seconds (30,000 events)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tsuba.core.events import SecurityEvent
from tsuba.soar.anomaly import AnomalySettings, BaselineDetector
from tsuba.soar.rules import DetectionEngine, builtin_rules

RESULTS = Path(__file__).parent / "results" / "detect.json"
PRINCIPALS = 10_000
T0 = datetime(2026, 3, 1, tzinfo=UTC)


def _event(rng: random.Random, at: float, principal: int) -> dict[str, Any]:
    name = f"p{principal}"
    ip = f"10.{principal // 250 % 250}.{principal % 250}.{rng.randrange(1, 250)}"
    roll = rng.random()
    base: dict[str, Any] = {"time": (T0 + timedelta(seconds=at)).isoformat(), "actor": name,
                            "src_ip": ip}
    if roll < 0.60:
        return {**base, "class": "api_activity", "activity": "create", "outcome": "success",
                "resource": f"model/m{rng.randrange(5)}", "tokens": {"total": 300}}
    if roll < 0.85:
        return {**base, "class": "authentication", "activity": "logon", "outcome": "success",
                "credential_id": f"tsk_{name}"}
    if roll < 0.88:
        return {**base, "class": "authentication", "activity": "logon", "outcome": "failure",
                "credential_id": f"tsk_{name}", "reason": "expired"}
    if roll < 0.95:
        return {**base, "class": "api_activity", "activity": "rate_limit",
                "outcome": "success" if rng.random() < 0.9 else "failure",
                "limit": "rpm", "remaining": rng.randrange(0, 50)}
    return {**base, "class": "detection_finding", "activity": "create", "outcome": "success",
            "stage": "input", "finding": {"guard": "pii", "verdict": "redact"}}


def _attacks(at: float, n: int) -> list[dict[str, Any]]:
    """One round of each attack, starting at ``at`` (events spread over a few seconds)."""
    t = lambda s: (T0 + timedelta(seconds=at + s)).isoformat()  # noqa: E731
    ip = f"203.0.{n % 250}.{n // 250 % 250 + 1}"
    out: list[dict[str, Any]] = []
    out += [{"time": t(i * 0.1), "class": "authentication", "outcome": "failure",
             "src_ip": ip, "credential_id": f"tsk_leaked{n}_{i}"} for i in range(12)]
    out.append({"time": t(2), "class": "authentication", "outcome": "success", "src_ip": ip,
                "actor": f"p{n}", "credential_id": f"tsk_p{n}"})
    out += [{"time": t(3 + i * 0.01), "class": "api_activity", "activity": "rate_limit",
             "outcome": "failure", "actor": f"bot{n}", "limit": "rpm", "remaining": 0}
            for i in range(25)]
    out += [{"time": t(4 + i), "class": "detection_finding", "actor": f"bot{n}",
             "outcome": "failure", "stage": "input",
             "finding": {"guard": "injection", "verdict": "block"}} for i in range(3)]
    out.append({"time": t(8), "class": "detection_finding", "actor": f"bot{n}",
                "outcome": "failure", "stage": "output",
                "finding": {"guard": "secrets", "verdict": "block"}})
    return out


def make_events(count: int, seed: int = 7) -> tuple[list[str], int]:
    rng = random.Random(seed)
    lines: list[str] = []
    rounds = 0
    per_second = 400.0  # events per second of simulated time
    i = 0
    while len(lines) < count:
        at = i / per_second
        if i % 10_000 == 5_000:
            lines += [json.dumps(e) for e in _attacks(at, rounds)]
            rounds += 1
        lines.append(json.dumps(_event(rng, at, rng.randrange(PRINCIPALS))))
        i += 1
    # Model extraction: one scraper, 1,200 calls in five minutes, near the end.
    at = i / per_second
    for k in range(1200):
        lines.append(json.dumps({"time": (T0 + timedelta(seconds=at + k * 0.25)).isoformat(),
                                 "class": "api_activity", "activity": "create",
                                 "outcome": "success", "actor": "scraper",
                                 "resource": "model/m0", "src_ip": "198.51.100.7"}))
    return lines, rounds


def _pct(values: list[int], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000.0


def run_engine(events: list[SecurityEvent], rules: bool) -> dict[str, Any]:
    engine = DetectionEngine(builtin_rules() if rules else [])
    per_event: list[int] = []
    alert_lat: list[int] = []
    counts: Counter[str] = Counter()
    clock = time.perf_counter_ns
    start = clock()
    for event in events:
        t0 = clock()
        alerts = engine.process(event)
        spent = clock() - t0
        per_event.append(spent)
        if alerts:
            alert_lat.append(spent)
            counts.update(a.rule_id for a in alerts)
    elapsed = (clock() - start) / 1e9
    return {
        "events": len(events),
        "seconds": round(elapsed, 3),
        "events_per_second": round(len(events) / elapsed),
        "latency_us": {"p50": _pct(per_event, 0.50), "p99": _pct(per_event, 0.99),
                       "max": max(per_event) / 1000.0},
        "alert_latency_us": (
            {"p50": _pct(alert_lat, 0.50), "p99": _pct(alert_lat, 0.99),
             "max": max(alert_lat) / 1000.0} if alert_lat else None
        ),
        "alerts": dict(sorted(counts.items())),
    }


def _request(at: datetime, actor: str, rng: random.Random, **extra: Any) -> SecurityEvent:
    return SecurityEvent.from_dict({
        "class": "api_activity", "activity": "create", "time": at.isoformat(), "actor": actor,
        "outcome": "failure" if rng.random() < 0.01 else "success",
        "resource": f"model/m{rng.randrange(2)}", "tokens": {"total": rng.gauss(300, 40)},
        "prompt_hash": f"h{rng.randrange(30)}", **extra,
    })


def _abuse(kind: str, actor: str, at: datetime, rng: random.Random) -> list[SecurityEvent]:
    if kind == "burst":
        return [_request(at + timedelta(seconds=i * 0.2), actor, rng) for i in range(200)]
    if kind == "tokens":
        return [_request(at + timedelta(seconds=i), actor, rng, tokens={"total": 30_000})
                for i in range(4)]
    if kind == "errors":
        return [SecurityEvent.from_dict({
            "class": "authentication", "outcome": "failure", "actor": actor,
            "time": (at + timedelta(seconds=i)).isoformat()}) for i in range(40)]
    if kind == "prompts":
        return [_request(at + timedelta(seconds=i), actor, rng, prompt_hash=f"sweep{i}")
                for i in range(50)]
    night = at.replace(hour=23, minute=7)
    return [_request(night + timedelta(seconds=i * 10), actor, rng) for i in range(4)]


def run_anomaly(principals: int, seed: int = 3) -> dict[str, Any]:
    """Per-principal baselines on three working days of generated traffic, abuse on day 3:
    the share of normal principal-minutes flagged, and the share of abuse found."""
    rng = random.Random(seed)
    start = datetime(2026, 3, 2, tzinfo=UTC)
    events: list[SecurityEvent] = []
    for day in range(3):
        for minute in range(9 * 60, 17 * 60):
            at = start + timedelta(days=day, minutes=minute)
            for p in range(principals):
                if rng.random() < 0.3:
                    events += [_request(at + timedelta(seconds=k * 7), f"p{p}", rng)
                               for k in range(rng.randint(2, 6))]
    kinds = ("burst", "tokens", "errors", "prompts", "hour")
    abusers = {f"p{i}": kinds[n % len(kinds)] for n, i in enumerate(range(0, principals, 6))}
    attack = start + timedelta(days=2, hours=14)
    for actor, kind in abusers.items():
        events += _abuse(kind, actor, attack, rng)
    events.sort(key=lambda e: e.time)
    detector = BaselineDetector(AnomalySettings(hour_warmup=100))
    began = time.perf_counter()
    alerts = detector.run(events)
    elapsed = time.perf_counter() - began
    flagged = {a.actor for a in alerts}
    normal_alerts = [a for a in alerts if a.actor not in abusers]
    buckets = sum(b.n for b in detector._principals.values())
    found = {k: sum(1 for a, kk in abusers.items() if kk == k and a in flagged) for k in kinds}
    total = {k: sum(1 for kk in abusers.values() if kk == k) for k in kinds}
    return {
        "principals": principals,
        "events": len(events),
        "events_per_second": round(len(events) / elapsed),
        "normal_buckets": buckets,
        "false_positive_alerts": len(normal_alerts),
        "false_positive_rate": round(len(normal_alerts) / buckets, 6) if buckets else None,
        "abusers": len(abusers),
        "detection_rate": round(sum(found.values()) / len(abusers), 4) if abusers else None,
        "detected_by_kind": {k: f"{found[k]}/{total[k]}" for k in kinds},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, a few seconds")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    count = 30_000 if args.quick else 500_000
    lines, rounds = make_events(count)
    start = time.perf_counter()
    events = [SecurityEvent.from_json(line) for line in lines]
    parse_s = time.perf_counter() - start
    pack = run_engine(events, rules=True)
    floor = run_engine(events, rules=False)
    anomaly = run_anomaly(30 if args.quick else 200)
    results: dict[str, Any] = {
        "benchmark": "detect",
        "mode": "quick" if args.quick else "full",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "cpus": os.cpu_count()},
        "principals": PRINCIPALS,
        "rules": len(builtin_rules()),
        "attack_rounds": rounds,
        "parse_json_lines": {"events": len(lines), "seconds": round(parse_s, 3),
                             "events_per_second": round(len(lines) / parse_s)},
        "builtin_pack": pack,
        "no_rules": floor,
        "anomaly_baselines": anomaly,
        "goals": {"events_per_second": 50_000, "p99_detection_latency_s": 1.0},
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"{len(lines)} events, {PRINCIPALS} principals, {rounds} attack rounds, "
          f"{results['rules']} rules")
    print(f"{'':24}{'events/s':>12}{'p50 us':>10}{'p99 us':>10}{'alert p99 us':>14}")
    print(f"{'parse JSON lines':24}{results['parse_json_lines']['events_per_second']:>12}")
    for name, res in (("tsuba built-in pack", pack), ("engine, no rules", floor)):
        lat, al = res["latency_us"], res["alert_latency_us"]
        print(f"{name:24}{res['events_per_second']:>12}{lat['p50']:>10.1f}{lat['p99']:>10.1f}"
              f"{(al['p99'] if al else float('nan')):>14.1f}")
    print("alerts:", ", ".join(f"{k.removeprefix('tsuba.')}={v}"
                               for k, v in pack["alerts"].items()))
    print(f"baselines: {anomaly['principals']} principals, {anomaly['events']} events, "
          f"{anomaly['events_per_second']} events/s, false positives "
          f"{anomaly['false_positive_alerts']}/{anomaly['normal_buckets']} principal-minutes, "
          f"detection {anomaly['detection_rate']:.0%} {anomaly['detected_by_kind']}")
    print(f"written to {args.output}")


if __name__ == "__main__":
    main()
