"""Limit behaviour, the same on the in-process and the Redis backend."""

from __future__ import annotations

import pytest
from ratelimit_support import run, settings

from tsuba.core.errors import ConfigError, RateLimitedError
from tsuba.gateway.context import LimitRequest
from tsuba.gateway.ratelimit import LimitExceeded, Reservation


def req(tokens: int = 0, principal: str = "alice", model: str | None = "demo",
        cost: float = 0.0) -> LimitRequest:
    return LimitRequest(principal, model, tokens, cost)


async def admitted(limiter, request: LimitRequest) -> bool:  # type: ignore[no-untyped-def]
    try:
        await limiter.admit(request)
    except RateLimitedError:
        return False
    return True


# -- GCRA request rates ---------------------------------------------------------------------


def test_gcra_allows_the_burst_then_the_steady_rate(make) -> None:
    # 6 per 60 s (one every 10 s) with a burst of 3
    h = make(settings(principal_defaults={"requests": 6, "interval_seconds": 60, "burst": 3}))

    async def scenario() -> None:
        lim = h.limiter
        for _ in range(3):
            await lim.admit(req())
        with pytest.raises(LimitExceeded) as refused:
            await lim.admit(req())
        assert refused.value.limit == "principal-requests"
        assert 9 <= refused.value.retry_after <= 10
        assert refused.value.headers["Retry-After"] == "10"
        h.advance(9)
        assert not await admitted(lim, req())
        h.advance(1.5)  # one emission interval has passed: exactly one more
        assert await admitted(lim, req())
        assert not await admitted(lim, req())
        h.advance(10)
        assert await admitted(lim, req())
        assert not await admitted(lim, req())
        h.advance(3600)  # idle refills only up to the burst, never more
        assert [await admitted(lim, req()) for _ in range(4)] == [True, True, True, False]
        await h.close()

    run(scenario())


def test_gcra_limits_are_per_principal(make) -> None:
    h = make(settings(principal_defaults={"requests": 1, "interval_seconds": 60}))

    async def scenario() -> None:
        assert await admitted(h.limiter, req(principal="alice"))
        assert not await admitted(h.limiter, req(principal="alice"))
        assert await admitted(h.limiter, req(principal="bob"))
        await h.close()

    run(scenario())


def test_refused_requests_do_not_consume_the_rate(make) -> None:
    h = make(settings(principal_defaults={"requests": 2, "interval_seconds": 20, "burst": 1}))

    async def scenario() -> None:
        assert await admitted(h.limiter, req())
        for _ in range(20):  # hammering while refused must not push the next slot further
            assert not await admitted(h.limiter, req())
        h.advance(10.5)
        assert await admitted(h.limiter, req())
        await h.close()

    run(scenario())


# -- token budgets: reserve, then settle or release ------------------------------------------


def test_settle_refunds_what_the_estimate_overstated(make) -> None:
    h = make(settings(principal_defaults={"tokens_per_day": 1000}))

    async def scenario() -> None:
        lim = h.limiter
        first = await lim.admit(req(600))
        assert "r=400" in first.headers["RateLimit"]
        assert not await admitted(lim, req(600))  # 600 reserved + 600 > 1000
        await first.settle(100)  # only 100 used: 500 come back
        second = await lim.admit(req(900))
        assert "r=0" in second.headers["RateLimit"]
        await second.settle(900)
        with pytest.raises(LimitExceeded) as refused:
            await lim.admit(req(1))
        assert refused.value.message == (
            "tokens per day for principal alice: 1000 of 1000 used or reserved, this request "
            "needs up to 1; retry in 86399 s"
        )
        h.advance(86_400)  # next UTC day: a fresh budget
        assert await admitted(lim, req(1000))
        await h.close()

    run(scenario())


def test_settle_charges_usage_beyond_the_estimate(make) -> None:
    h = make(settings(principal_defaults={"tokens_per_day": 1000}))

    async def scenario() -> None:
        lim = h.limiter
        admission = await lim.admit(req(100))
        await admission.settle(1200)  # the upstream used more than estimated
        with pytest.raises(LimitExceeded) as refused:
            await lim.admit(req(0))
        assert "1200 of 1000 used" in refused.value.message
        await h.close()

    run(scenario())


def test_release_refunds_everything_and_frees_the_slot(make) -> None:
    h = make(settings(principal_defaults={"tokens_per_day": 1000, "concurrent": 1}))

    async def scenario() -> None:
        lim = h.limiter
        admission = await lim.admit(req(1000))
        with pytest.raises(LimitExceeded) as refused:
            await lim.admit(req(1))
        assert refused.value.limit in ("principal-tokens-day", "principal-concurrent")
        await admission.release()
        again = await lim.admit(req(1000))
        await again.settle(1000)
        assert not await admitted(lim, req(1))
        await h.close()

    run(scenario())


def test_settle_and_release_count_once(make) -> None:
    h = make(settings(principal_defaults={"tokens_per_day": 1000, "concurrent": 2}))

    async def scenario() -> None:
        lim = h.limiter
        one = await lim.admit(req(300))
        await one.settle(300)
        await one.settle(300)
        await one.release()  # after settle: nothing more happens
        assert one.done
        two = await lim.admit(req(300))
        await two.release()
        await two.release()
        await two.settle(500)  # after release: no charge
        # exactly 700 left, and both concurrency slots are free again
        held = [await lim.admit(req(350)), await lim.admit(req(350))]
        assert not await admitted(lim, req(0))
        for admission in held:
            await admission.release()
        await h.close()

    run(scenario())


def test_abandoned_reservations_expire_and_are_refunded(make) -> None:
    h = make(settings(principal_defaults={"tokens_per_day": 1000, "concurrent": 1},
                      reservation_timeout_seconds=600))

    async def scenario() -> None:
        lim = h.limiter
        await lim.admit(req(800))  # a worker that crashed: never settled, never released
        h.advance(599)
        assert not await admitted(lim, req(300))
        h.advance(2)
        late = await lim.admit(req(1000))  # refunded, slot freed
        await late.release()
        await h.close()

    run(scenario())


def test_a_settle_after_expiry_still_charges(make) -> None:
    h = make(settings(principal_defaults={"tokens_per_day": 1000, "concurrent": 5},
                      reservation_timeout_seconds=60))

    async def scenario() -> None:
        lim = h.limiter
        slow = await lim.admit(req(500))
        h.advance(61)
        other = await lim.admit(req(1000))  # the slow one's reservation was refunded
        await other.release()
        await slow.settle(700)  # a long stream finally reports its usage
        assert not await admitted(lim, req(301))
        assert await admitted(lim, req(300))
        await h.close()

    run(scenario())


def test_tokens_per_minute_window_resets_each_minute(make) -> None:
    h = make(settings(model_defaults={"tokens_per_minute": 100}))

    async def scenario() -> None:
        lim = h.limiter
        a = await lim.admit(req(100, principal="alice"))
        await a.settle(100)
        with pytest.raises(LimitExceeded) as refused:
            await lim.admit(req(1, principal="bob"))  # per model: shared by principals
        assert refused.value.limit == "model-tokens-minute"
        assert "for model demo" in refused.value.message
        assert refused.value.retry_after == pytest.approx(59, abs=0.5)
        h.advance(59.5)
        assert await admitted(lim, req(100, principal="bob"))
        await h.close()

    run(scenario())


# -- all or nothing -----------------------------------------------------------------------------


def test_a_refusal_reserves_nothing_anywhere(make) -> None:
    h = make(settings(
        total={"tokens_per_day": 10_000, "concurrent": 10},
        principal_defaults={"tokens_per_day": 10_000},
        principal_models=[{"principal": "alice", "model": "demo", "tokens_per_day": 500}],
    ))

    async def scenario() -> None:
        lim = h.limiter
        await (await lim.admit(req(500))).settle(500)
        for _ in range(5):  # each refused by the principal-model budget alone
            with pytest.raises(LimitExceeded) as refused:
                await lim.admit(req(400))
            assert refused.value.limit == "principal-model-tokens-day"
        # the other budgets were not touched by the refusals: 9500 left in each
        big = await lim.admit(req(9500, model="other"))
        assert '"total-tokens-day";r=0' in big.headers["RateLimit"]
        assert '"principal-tokens-day";r=0' in big.headers["RateLimit"]
        assert '"total-concurrent";r=9' in big.headers["RateLimit"]
        await h.close()

    run(scenario())


def test_the_refusal_names_the_limit_that_lasts_longest(make) -> None:
    h = make(settings(principal_defaults={"requests": 1, "interval_seconds": 10,
                                          "tokens_per_day": 100}))

    async def scenario() -> None:
        await (await h.limiter.admit(req(100))).settle(100)
        with pytest.raises(LimitExceeded) as refused:
            await h.limiter.admit(req(1))
        assert refused.value.limit == "principal-tokens-day"  # waiting 10 s would not help
        assert refused.value.retry_after > 80_000
        await h.close()

    run(scenario())


# -- concurrency ----------------------------------------------------------------------------------


def test_concurrency_slots(make) -> None:
    h = make(settings(principal_defaults={"concurrent": 2}, total={"concurrent": 3}))

    async def scenario() -> None:
        lim = h.limiter
        a1, a2 = await lim.admit(req()), await lim.admit(req())
        with pytest.raises(LimitExceeded) as refused:
            await lim.admit(req())
        assert refused.value.message == (
            "concurrent requests for principal alice: 2 of 2 in flight; retry in 1 s"
        )
        b1 = await lim.admit(req(principal="bob"))
        with pytest.raises(LimitExceeded) as refused:
            await lim.admit(req(principal="carol"))
        assert refused.value.limit == "total-concurrent"
        await a1.settle(0)
        c1 = await lim.admit(req(principal="carol"))
        for admission in (a2, b1, c1):
            await admission.release()
        assert await admitted(lim, req())
        await h.close()

    run(scenario())


# -- spend budgets ----------------------------------------------------------------------------


def test_spend_budget_priced_from_the_table(make) -> None:
    h = make(settings(
        principal_defaults={"spend_per_day": 0.01},
        prices={"demo": {"input_per_million": 1.0, "output_per_million": 4.0}},
        spend_unit="EUR",
    ))

    async def scenario() -> None:
        lim = h.limiter
        assert lim.cost("demo", 1000, 500) == pytest.approx(0.003)
        # estimate: 2000 tokens at the dearer rate = 0.008 EUR
        first = await lim.admit(req(2000))
        with pytest.raises(LimitExceeded) as refused:
            await lim.admit(req(1000))
        assert refused.value.limit == "principal-spend-day"
        assert refused.value.message.startswith(
            "spend per day for principal alice: 0.008 of 0.01 EUR used or reserved"
        )
        await first.settle(1500, lim.cost("demo", 1000, 500) or 0.0)  # 0.003 charged
        second = await lim.admit(req(1750))  # 0.007 more fits exactly
        await second.release()
        assert not await admitted(lim, req(1751))
        await h.close()

    run(scenario())


def test_explicit_costs_and_monthly_spend(make) -> None:
    h = make(settings(principal_defaults={"spend_per_month": 1.0}))

    async def scenario() -> None:
        lim = h.limiter
        a = await lim.admit(req(10, cost=0.6))
        await a.settle(10, 0.7)
        assert not await admitted(lim, req(10, cost=0.31))
        b = await lim.admit(req(10, cost=0.3))
        await b.settle(10)  # no actual cost and no price: the reserved 0.3 is charged
        assert not await admitted(lim, req(10, cost=0.000001))
        h.advance(31 * 86_400)  # February 2030: a new month
        assert await admitted(lim, req(10, cost=1.0))
        await h.close()

    run(scenario())


def test_unpriced_model_under_a_spend_budget_is_refused(make) -> None:
    h = make(settings(principal_defaults={"spend_per_day": 5}))

    async def scenario() -> None:
        expected = r"on model demo, but that model has no price: add it to gateway\.limits\.prices"
        with pytest.raises(ConfigError, match=expected):
            await h.limiter.admit(req(100))
        await h.close()

    run(scenario())


# -- impossible requests and blocks -------------------------------------------------------------


def test_zero_limit_blocks_and_oversized_estimates_are_refused(make) -> None:
    h = make(settings(
        principals={"mallory": {"requests": 0}},
        principal_defaults={"tokens_per_minute": 1000},
    ))

    async def scenario() -> None:
        lim = h.limiter
        with pytest.raises(LimitExceeded, match="limit is 0") as refused:
            await lim.admit(req(principal="mallory"))
        assert refused.value.headers["Retry-After"] == "60"
        with pytest.raises(LimitExceeded) as refused:
            await lim.admit(req(1001))
        assert refused.value.message == (
            "tokens per minute for principal alice: this request needs up to 1001, more than "
            "the whole limit of 1000; lower max_tokens"
        )
        assert await admitted(lim, req(1000))
        await h.close()

    run(scenario())


# -- headers ------------------------------------------------------------------------------------


def test_admission_headers_follow_the_draft(make) -> None:
    h = make(settings(principal_defaults={"requests": 10, "interval_seconds": 60,
                                          "tokens_per_day": 5000, "concurrent": 4,
                                          "spend_per_day": 1.0},
                      prices={"**": {"input_per_million": 0, "output_per_million": 0}}))

    async def scenario() -> None:
        admission = await h.limiter.admit(req(1000))
        assert isinstance(admission, Reservation)
        assert admission.headers["RateLimit-Policy"] == (
            '"principal-requests";q=10;w=60, '
            '"principal-tokens-day";q=5000;qu="tokens";w=86400, '
            '"principal-concurrent";q=4;qu="concurrent-requests"'
        )
        assert admission.headers["RateLimit"] == (
            '"principal-requests";r=9;t=6, '
            '"principal-tokens-day";r=4000;t=86399, '
            '"principal-concurrent";r=3'
        )
        assert "Retry-After" not in admission.headers
        await admission.release()
        await h.close()

    run(scenario())


def test_no_limits_at_all_admits_without_a_round_trip(make) -> None:
    h = make(settings())

    async def scenario() -> None:
        admission = await h.limiter.admit(req(10**9))
        assert dict(admission.headers) == {}
        await admission.settle(10**9)
        await h.close()

    run(scenario())
