"""Authorization: tsuba's decision against pycasbin's on the same RBAC policy and requests.

The policy: roles with allow and deny permissions, principals bound to a few roles each.
Resource patterns are limited to exact names and a trailing ``/*`` over one-segment
names, where casbin's ``keyMatch`` and tsuba's segment globs agree, so both engines must
give the same answers (checked).  Casbin is configured for deny-override
(``some(allow) && !some(deny)``), the semantics tsuba has.

Figures:
- ``decide``: the in-memory decision per request (tsuba: validation + compiled snapshot;
  casbin: ``Enforcer.enforce``);
- ``authorize``: tsuba's full per-request path, including the one-row policy-version read
  that keeps every process within one check of the stored policy, on SQLite (and
  PostgreSQL when TSUBA_TEST_DATABASE_URL is set); the bare version read is shown as the
  floor (casbin has no equivalent: it needs a separate watcher to see changes);
- ``rebuild``: building one principal's snapshot from the database after a change.

    python bench/authz.py --quick     # a few seconds
    python bench/authz.py             # full sizes

Figures go to bench/results/authz.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from scratch import scratch_postgres
from tsuba.core.identity import Authorizer, IdentityService
from tsuba.core.identity.policy import decide, validate_request
from tsuba.core.storage import open_engine, upgrade

try:  # the reference; installed with the test extra
    import casbin
except ImportError:  # reported in the results instead
    casbin = None

RESULTS = Path(__file__).parent / "results" / "authz.json"

CASBIN_MODEL = """
[request_definition]
r = sub, obj, act

[policy_definition]
p = sub, obj, act, eft

[role_definition]
g = _, _

[policy_effect]
e = some(where (p.eft == allow)) && !some(where (p.eft == deny))

[matchers]
m = g(r.sub, p.sub) && keyMatch(r.obj, p.obj) && (r.act == p.act || p.act == "*")
"""

ACTIONS = ["model:invoke", "model:read", "dataset:read", "audit:read"]
KINDS = ["model", "dataset", "log"]


def make_policy(roles: int, perms: int, principals: int, per_principal: int, seed: int = 7):
    rng = random.Random(seed)
    role_perms: dict[str, list[tuple[str, str, str]]] = {}
    for r in range(roles):
        rows = set()
        while len(rows) < perms:
            kind = rng.choice(KINDS)
            resource = f"{kind}/*" if rng.random() < 0.3 else f"{kind}/n{rng.randrange(200)}"
            action = "*" if rng.random() < 0.05 else rng.choice(ACTIONS)
            rows.add((action, resource))
        role_perms[f"role{r}"] = [
            ("deny" if rng.random() < 0.1 else "allow", a, res) for a, res in sorted(rows)
        ]
    bindings = {f"p{i}": rng.sample(sorted(role_perms), per_principal) for i in range(principals)}
    return role_perms, bindings


def make_requests(n: int, principals: int, seed: int = 11) -> list[tuple[str, str, str]]:
    rng = random.Random(seed)
    return [
        (
            f"p{rng.randrange(principals)}",
            rng.choice(ACTIONS),
            f"{rng.choice(KINDS)}/n{rng.randrange(200)}",
        )
        for _ in range(n)
    ]


def load_tsuba(engine, role_perms, bindings) -> None:
    with IdentityService(engine, actor="bench") as svc:
        for name in bindings:
            svc.create_principal(name, "service")
        for role, rows in role_perms.items():
            svc.create_role(role)
            for effect, action, resource in rows:
                svc.add_permission(role, action, resource, effect=effect)
        for name, roles in bindings.items():
            for role in roles:
                svc.bind(role, name)


def casbin_enforcer(role_perms, bindings):
    if casbin is None:
        raise ImportError("casbin")
    model = casbin.Enforcer.new_model(text=CASBIN_MODEL)
    enforcer = casbin.Enforcer(model)
    for role, rows in role_perms.items():
        for effect, action, resource in rows:
            enforcer.add_policy(role, resource, action, effect)
    for name, roles in bindings.items():
        for role in roles:
            enforcer.add_grouping_policy(name, role)
    return enforcer


def per_second(fn: Callable[[], Any], n: int, repeats: int) -> dict[str, float]:
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    best = min(runs)
    return {
        "per_second": round(n / best, 1),
        "us_per_check": round(best / n * 1e6, 2),
        "median_us_per_check": round(statistics.median(runs) / n * 1e6, 2),
    }




def bench_backend(engine, bindings, requests, repeats: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with Authorizer(engine) as authz:
        for p, a, r in requests:  # warm every snapshot
            authz.authorize(p, a, r)

        def full() -> None:
            for p, a, r in requests:
                authz.authorize(p, a, r)

        def version_only() -> None:
            for _ in requests:
                authz.current_version()

        out["authorize"] = per_second(full, len(requests), repeats)
        out["version_read_floor"] = per_second(version_only, len(requests), repeats)
        names = sorted(bindings)[:50]

        def rebuild() -> None:
            for name in names:
                authz.invalidate()
                authz.snapshot(name)

        out["rebuild"] = per_second(rebuild, len(names), repeats)
    return out


@contextmanager
def loaded(url: str, role_perms, bindings) -> Iterator[tuple[Any, float]]:
    engine = open_engine(url)
    try:
        upgrade(engine)
        start = time.perf_counter()
        load_tsuba(engine, role_perms, bindings)
        yield engine, time.perf_counter() - start
    finally:
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, a few seconds")
    args = parser.parse_args()
    if args.quick:
        roles, perms, principals, per_p, n_req, repeats = 8, 8, 12, 2, 500, 2
    else:
        roles, perms, principals, per_p, n_req, repeats = 100, 20, 300, 4, 5_000, 3
    role_perms, bindings = make_policy(roles, perms, principals, per_p)
    requests = make_requests(n_req, principals)
    sizes = {
        "roles": roles,
        "permissions_per_role": perms,
        "principals": principals,
        "roles_per_principal": per_p,
        "requests": n_req,
    }

    results: dict[str, Any] = {
        "benchmark": "authz",
        "mode": "quick" if args.quick else "full",
        "date": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
        },
        "sizes": sizes,
    }

    with (
        tempfile.TemporaryDirectory() as tmp,
        loaded(f"sqlite:///{Path(tmp) / 'bench.db'}", role_perms, bindings) as (eng, load_s),
    ):
        with Authorizer(eng) as authz:
            snaps = {name: authz.snapshot(name) for name in bindings}
        results["sqlite"] = bench_backend(eng, bindings, requests, repeats)
        results["sqlite"]["load_policy_s"] = round(load_s, 2)
    with scratch_postgres() as pg_url:
        if pg_url is not None:
            with loaded(pg_url, role_perms, bindings) as (eng, load_s):
                results["postgresql"] = bench_backend(eng, bindings, requests, repeats)
                results["postgresql"]["load_policy_s"] = round(load_s, 2)

    now = datetime.now(UTC)

    def tsuba_decide() -> None:
        for p, a, r in requests:
            validate_request(a, r)
            decide(snaps[p], a, r, now)

    tsuba_answers = [decide(snaps[p], a, r, now).allowed for p, a, r in requests]
    results["decide"] = {"tsuba": per_second(tsuba_decide, n_req, repeats)}
    try:
        enforcer = casbin_enforcer(role_perms, bindings)
    except ImportError:
        results["decide"]["casbin"] = "not installed (pip install -e '.[test]')"
    else:
        casbin_answers = [enforcer.enforce(p, r, a) for p, a, r in requests]
        results["decisions_agree"] = casbin_answers == tsuba_answers

        def casbin_decide() -> None:
            for p, a, r in requests:
                enforcer.enforce(p, r, a)

        results["decide"]["casbin"] = per_second(casbin_decide, n_req, repeats)
    results["allowed_share"] = round(sum(tsuba_answers) / n_req, 3)

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print_table(results)


def print_table(results: dict[str, Any]) -> None:
    print(f"authz benchmark ({results['mode']}): {results['sizes']}")
    print(f"{'path':<38}{'checks/s':>14}{'us/check':>12}")
    rows: list[tuple[str, Any]] = [
        ("decide, tsuba (in memory)", results["decide"]["tsuba"]),
        ("decide, casbin enforce (in memory)", results["decide"].get("casbin")),
    ]
    for backend in ("sqlite", "postgresql"):
        if backend in results:
            b = results[backend]
            rows += [
                (f"authorize, tsuba on {backend}", b["authorize"]),
                (f"  version read alone ({backend})", b["version_read_floor"]),
                (f"  snapshot rebuild ({backend})", b["rebuild"]),
            ]
    for name, fig in rows:
        if isinstance(fig, dict):
            print(f"{name:<38}{fig['per_second']:>14,.0f}{fig['us_per_check']:>12.2f}")
        else:
            print(f"{name:<38}{fig!s:>26}")
    if "decisions_agree" in results:
        print(f"tsuba and casbin decisions agree: {results['decisions_agree']}")
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
