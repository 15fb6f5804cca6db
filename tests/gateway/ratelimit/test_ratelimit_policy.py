"""Which limits apply, configuration, calendar windows, headers, events, and failure modes."""

from __future__ import annotations

import asyncio
import socket
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ratelimit_support import REDIS_URL, delete_prefix, redis_offset, run
from ratelimit_support import settings as limits

from tsuba.core.config import LimitsSettings, load_settings
from tsuba.core.errors import ConfigError, InputError, StorageError
from tsuba.core.events import EventClass, Outcome
from tsuba.gateway.context import LimitRequest
from tsuba.gateway.ratelimit import (
    Kind,
    LimitExceeded,
    LimitPolicy,
    MemoryLimiter,
    RedisLimiter,
    Scope,
    build_limiter,
    limit_event,
    rate_limit_headers,
    windows,
)
from tsuba.gateway.ratelimit.headers import CheckState
from tsuba.gateway.ratelimit.policy import Check


def names(policy: LimitPolicy, principal: str, model: str | None = "demo") -> dict[str, int]:
    plan = policy.plan(LimitRequest(principal, model, 10))
    return {c.name: c.limit for c in plan.checks}


# -- resolution -------------------------------------------------------------------------------


def test_defaults_are_generous_per_principal_limits() -> None:
    policy = LimitPolicy(LimitsSettings())
    assert names(policy, "alice") == {
        "principal-requests": 600,
        "principal-tokens-minute": 200_000,
        "principal-tokens-day": 5_000_000,
        "principal-concurrent": 32,
    }


def test_overrides_pick_the_most_specific_pattern_and_keep_unset_fields() -> None:
    policy = LimitPolicy(limits(
        principal_defaults={"requests": 100, "tokens_per_day": 1000},
        principals={
            "*": {"requests": 1},
            "team-*": {"requests": 50},
            "team-a*": {"tokens_per_day": 7},
            "team-alpha": {"requests": 99},
        },
    ))
    assert names(policy, "team-alpha") == {"principal-requests": 99,
                                           "principal-tokens-day": 1000}
    assert names(policy, "team-abc") == {"principal-requests": 100, "principal-tokens-day": 7}
    assert names(policy, "team-b") == {"principal-requests": 50, "principal-tokens-day": 1000}
    assert names(policy, "zed") == {"principal-requests": 1, "principal-tokens-day": 1000}


def test_model_scopes_and_the_first_matching_pair() -> None:
    policy = LimitPolicy(limits(
        total={"concurrent": 100},
        model_defaults={"tokens_per_minute": 10},
        models={"gpt-*": {"tokens_per_minute": 20}, "meta/**": {"concurrent": 3}},
        principal_models=[
            {"principal": "alice", "model": "gpt-*", "tokens_per_day": 1},
            {"principal": "*", "model": "**", "tokens_per_day": 2},
        ],
    ))
    assert names(policy, "alice", "gpt-4o") == {
        "total-concurrent": 100, "model-tokens-minute": 20, "principal-model-tokens-day": 1}
    assert names(policy, "bob", "gpt-4o")["principal-model-tokens-day"] == 2
    assert names(policy, "bob", "meta/llama/3") == {
        "total-concurrent": 100, "model-tokens-minute": 10, "model-concurrent": 3,
        "principal-model-tokens-day": 2}
    assert names(policy, "bob", None) == {"total-concurrent": 100}  # no model: no model scopes


def test_names_cannot_collide_in_counter_keys() -> None:
    policy = LimitPolicy(limits(principal_models=[{"tokens_per_day": 5}]))
    keys = {
        c.key for p, m in (("a", "b/c"), ("a", "b%2Fc"), ("a:b", "c"), ("a", "b:c"))
        for c in policy.plan(LimitRequest(p, m, 1)).checks
    }
    assert len(keys) == 4


def test_burst_defaults_to_the_rate_and_spend_is_exact() -> None:
    policy = LimitPolicy(limits(principal_defaults={"requests": 30, "interval_seconds": 60,
                                                    "spend_per_day": 0.1},
                                prices={"demo": {"input_per_million": 0.1,
                                                 "output_per_million": 0.3}}))
    plan = policy.plan(LimitRequest("a", "demo", 1000))
    requests, spend = plan.checks
    assert (requests.kind, requests.burst, requests.emission) == (Kind.REQUESTS, 30, 2.0)
    assert (spend.kind, spend.limit, spend.amount) == (Kind.SPEND_DAY, 100_000_000, 300_000)
    assert policy.cost("demo", 1000, 1000) == pytest.approx(0.0004)
    assert policy.cost("other", 1, 1) is None


@pytest.mark.parametrize("bad", [
    {"principals": {"a//b": {}}},
    {"models": {"x**": {}}},
    {"principal_models": [{"model": "a/../b"}]},
    {"principal_defaults": {"requests": -1}},
    {"principal_defaults": {"interval_seconds": 0}},
    {"backend": "memcached"},
    {"reservation_timeout_seconds": 0},
    {"prices": {"demo": {"input_per_million": 1}}},
    {"principal_defaults": {"tokens_per_year": 5}},
])
def test_malformed_settings_are_refused(bad: dict) -> None:
    with pytest.raises(ValueError, match="validation error"):
        LimitsSettings.model_validate(bad)


def test_settings_load_from_toml_and_environment(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "tsuba.toml").write_text(
        '[gateway.limits]\nspend_unit = "EUR"\n'
        '[gateway.limits.principals."svc-*"]\nconcurrent = 4\n'
        '[[gateway.limits.principal_models]]\nprincipal = "alice"\nmodel = "demo"\n'
        "tokens_per_day = 10000\n"
        '[gateway.limits.prices.demo]\ninput_per_million = 0.5\noutput_per_million = 1.5\n'
    )
    monkeypatch.setenv("TSUBA_GATEWAY__LIMITS__BACKEND", "redis")
    monkeypatch.setenv("TSUBA_GATEWAY__LIMITS__REDIS_URL", "redis://:secret@127.0.0.1:1/0")
    loaded = load_settings(tmp_path).gateway.limits
    assert loaded.backend == "redis"
    assert loaded.principals["svc-*"].concurrent == 4
    assert loaded.principal_models[0].tokens_per_day == 10_000
    assert "secret" not in str(load_settings(tmp_path).redacted())
    (tmp_path / "tsuba.toml").write_text('[gateway.limits.principals."a//b"]\nconcurrent = 1\n')
    with pytest.raises(ConfigError, match="malformed resource pattern 'a//b'"):
        load_settings(tmp_path)


def test_bad_estimates_are_input_errors() -> None:
    limiter = MemoryLimiter(LimitsSettings())
    for request in (LimitRequest("a", "m", -1), LimitRequest("a", "m", 1, -0.5),
                    LimitRequest("a", "m", 1, float("nan"))):
        with pytest.raises(InputError):
            run(limiter.admit(request))

    async def settle_negative() -> None:
        admission = await limiter.admit(LimitRequest("a", "m", 1))
        with pytest.raises(InputError):
            await admission.settle(-5)
        with pytest.raises(InputError):
            await admission.settle(1, float("inf"))
        await admission.release()

    run(settle_negative())


# -- windows ----------------------------------------------------------------------------------


def test_python_calendar_windows() -> None:
    feb = datetime(2028, 2, 29, 23, 59, 59, tzinfo=UTC).timestamp()
    wid, end = windows.window("month", feb)
    assert wid == 2028 * 12 + 1
    assert end == datetime(2028, 3, 1, tzinfo=UTC).timestamp()
    assert windows.length("month", feb) == 29 * 86_400
    dec = datetime(2029, 12, 31, 12, tzinfo=UTC).timestamp()
    assert windows.window("month", dec)[1] == datetime(2030, 1, 1, tzinfo=UTC).timestamp()
    assert windows.window("minute", 119.5) == (1, 120.0)
    assert windows.window("day", 86_400.0) == (1, 172_800.0)


@settings(max_examples=60, deadline=None)
@given(st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2199, 12, 31)),
       st.sampled_from([Kind.TOKENS_MINUTE, Kind.TOKENS_DAY, Kind.SPEND_MONTH]))
def test_lua_windows_match_python(at: datetime, kind: Kind) -> None:
    if not REDIS_URL:
        pytest.skip("Redis not configured (source .ci/services.sh)")
    from redis.asyncio import Redis

    target = at.replace(tzinfo=UTC).timestamp()
    check = Check(Scope.TOTAL, kind, "t/window-test", 10, 1, "for the gateway")

    async def decide():  # type: ignore[no-untyped-def]
        limiter = RedisLimiter(LimitsSettings(), client=Redis.from_url(REDIS_URL),
                               key_prefix="{rl-windows}:",
                               time_offset=redis_offset(REDIS_URL, target))
        try:
            verdict = await limiter._decide("probe", [check])
            await limiter._finish("probe", [(check, verdict.handles[0])], [0])
            return verdict
        finally:
            await limiter.aclose()

    try:
        verdict = run(decide())
    finally:
        delete_prefix(REDIS_URL, "{rl-windows}:")
    window = kind.window
    assert window is not None
    wid, end = windows.window(window, verdict.now)
    assert verdict.handles[0].endswith(f":{wid}")
    assert verdict.states[0].reset == pytest.approx(end - verdict.now, abs=1e-5)


# -- headers ------------------------------------------------------------------------------------


def test_refusal_headers_round_retry_after_up() -> None:
    check = Check(Scope.PRINCIPAL, Kind.TOKENS_MINUTE, "k", 10**18, 1, "for principal a")
    headers = rate_limit_headers([check], [CheckState(10**17, 0.2, 0)], 0.0, retry_after=2.01)
    assert headers["Retry-After"] == "3"
    assert headers["RateLimit-Policy"] == (
        '"principal-tokens-minute";q=999999999999999;qu="tokens";w=60'
    )
    assert headers["RateLimit"] == '"principal-tokens-minute";r=999999999999999;t=1'
    assert rate_limit_headers([check], None, 0.0, retry_after=0.0)["Retry-After"] == "1"


# -- events -------------------------------------------------------------------------------------


def test_limit_events_for_admission_and_refusal() -> None:
    limiter = MemoryLimiter(limits(principal_defaults={"tokens_per_day": 100, "concurrent": 8}))
    request = LimitRequest("alice", "demo", 80)

    async def decide():  # type: ignore[no-untyped-def]
        admission = await limiter.admit(request)
        try:
            await limiter.admit(request)
        except LimitExceeded as exc:
            return admission, exc
        raise AssertionError("second admission should be refused")

    admission, refusal = run(decide())
    ok = limit_event(request, admission, correlation_id="req-1", src_ip="10.0.0.1")
    assert ok.event_class is EventClass.API_ACTIVITY
    assert (ok.activity, ok.outcome, ok.actor, ok.resource) == (
        "rate_limit", Outcome.SUCCESS, "alice", "model/demo")
    assert ok.attributes == {"estimated_tokens": 80, "model": "demo",
                             "limit": "principal-tokens-day", "remaining": 20}
    assert ok.correlation_id == "req-1"
    bad = limit_event(request, refusal)
    assert bad.outcome is Outcome.FAILURE
    assert bad.message == refusal.message
    assert bad.attributes["limit"] == "principal-tokens-day"
    assert bad.attributes["remaining"] == 20
    assert bad.attributes["retry_after"] >= 1
    assert bad.to_ocsf()["class_uid"] == 6003


# -- building and failing closed ----------------------------------------------------------------


def test_build_limiter_from_settings() -> None:
    assert isinstance(build_limiter(LimitsSettings()), MemoryLimiter)
    assert isinstance(build_limiter(load_settings(Path("/nonexistent-home"))), MemoryLimiter)
    with pytest.raises(ConfigError, match="redis_url is unset"):
        build_limiter(LimitsSettings(backend="redis"))
    limiter = build_limiter(LimitsSettings.model_validate(
        {"backend": "redis", "redis_url": "redis://127.0.0.1:1/0"}))
    assert isinstance(limiter, RedisLimiter)
    run(limiter.aclose())


def test_an_unreachable_redis_refuses_requests() -> None:
    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    limiter = build_limiter(LimitsSettings.model_validate(
        {"backend": "redis", "redis_url": f"redis://127.0.0.1:{port}/0"}))

    async def attempt() -> None:
        try:
            with pytest.raises(StorageError, match="refused until it answers again"):
                await limiter.admit(LimitRequest("alice", "demo", 1))
        finally:
            await limiter.aclose()

    asyncio.run(attempt())


def test_each_redis_decision_is_exactly_one_script_call(redis_url, prefix) -> None:
    from redis.asyncio import Redis

    class Counting(Redis):  # the real client, recording each command it sends
        sent: list[str]

        async def execute_command(self, *args, **options):  # type: ignore[no-untyped-def]
            self.sent.append(str(args[0]))
            return await super().execute_command(*args, **options)

    async def scenario() -> list[list[str]]:
        client = Counting.from_url(redis_url)
        client.sent = []
        limiter = RedisLimiter(limits(
            total={"concurrent": 10},
            principal_defaults={"requests": 10, "tokens_per_minute": 2000,
                                "tokens_per_day": 5000, "spend_per_month": 1.0,
                                "concurrent": 2},
            prices={"demo": {"input_per_million": 1, "output_per_million": 1}},
        ), client=client, key_prefix=prefix)
        calls = []
        for step in ("admit", "settle", "admit", "release", "refused"):
            client.sent.clear()
            if step == "admit":
                admission = await limiter.admit(LimitRequest("alice", "demo", 600))
            elif step == "settle":
                await admission.settle(500)
            elif step == "release":
                await admission.release()
            else:
                with pytest.raises(LimitExceeded):
                    await limiter.admit(LimitRequest("alice", "demo", 1600))
            calls.append(list(client.sent))
        await limiter.aclose()
        return calls

    assert run(scenario()) == [["EVALSHA"]] * 5
