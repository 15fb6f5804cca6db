"""Which limits apply to a request, and what it reserves against each.

The policy turns settings into a flat list of :class:`Check` values per request, so both
backends decide over the same plain data: the in-process one in Python, the Redis one in a
single Lua script.  Spend is counted in integer nano-units of the configured currency so that
sums stay exact in both Python and Lua (doubles hold integers exactly up to 2**53, which is
nine million units of currency at this resolution per counter).

Override resolution: an exact name beats every pattern; among patterns the one with the most
literal characters wins, ties going to the one written first.  Overrides replace only the
fields they set.  ``principal_models`` entries are tried in order and the first match applies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import TypeVar
from urllib.parse import quote

from tsuba.core.config import LimitsSettings
from tsuba.core.errors import ConfigError, InputError
from tsuba.core.identity.patterns import ResourcePattern, compile_pattern
from tsuba.gateway.context import LimitRequest

NANO = 1_000_000_000
_Values = LimitsSettings.Values
_T = TypeVar("_T")


class Scope(StrEnum):
    TOTAL = "total"
    MODEL = "model"
    PRINCIPAL = "principal"
    PRINCIPAL_MODEL = "principal-model"


class Kind(StrEnum):
    REQUESTS = "requests"
    TOKENS_MINUTE = "tokens-minute"
    TOKENS_DAY = "tokens-day"
    SPEND_DAY = "spend-day"
    SPEND_MONTH = "spend-month"
    CONCURRENT = "concurrent"

    @property
    def window(self) -> str | None:
        """Calendar window (UTC) of a budget: ``minute``, ``day`` or ``month``."""
        return _WINDOW.get(self)

    @property
    def is_spend(self) -> bool:
        return self in (Kind.SPEND_DAY, Kind.SPEND_MONTH)

    @property
    def label(self) -> str:
        return _LABEL[self]


_WINDOW = {
    Kind.TOKENS_MINUTE: "minute",
    Kind.TOKENS_DAY: "day",
    Kind.SPEND_DAY: "day",
    Kind.SPEND_MONTH: "month",
}
_LABEL = {
    Kind.REQUESTS: "requests",
    Kind.TOKENS_MINUTE: "tokens per minute",
    Kind.TOKENS_DAY: "tokens per day",
    Kind.SPEND_DAY: "spend per day",
    Kind.SPEND_MONTH: "spend per month",
    Kind.CONCURRENT: "concurrent requests",
}


@dataclass(frozen=True, slots=True)
class Check:
    """One limit one request is held to, and what the request takes from it.

    ``limit`` and ``amount`` are requests, tokens, nano-units of spend or slots.  For
    ``requests`` (GCRA) ``limit`` requests are allowed per ``period`` seconds with up to
    ``burst`` back to back.
    """

    scope: Scope
    kind: Kind
    key: str
    limit: int
    amount: int
    who: str
    period: float = 0.0
    burst: int = 0

    @property
    def name(self) -> str:
        """The policy name in ``RateLimit`` headers and events, e.g. ``principal-tokens-day``."""
        return f"{self.scope.value}-{self.kind.value}"

    @property
    def emission(self) -> float:
        """GCRA emission interval: seconds one request occupies."""
        return self.period / self.limit

    def describe(self) -> str:
        if self.kind is Kind.REQUESTS:
            rate = f"{self.limit} per {_seconds(self.period)}, burst {self.burst}"
            return f"requests ({rate}) {self.who}"
        return f"{self.kind.label} {self.who}"


@dataclass(frozen=True, slots=True)
class Plan:
    """The checks of one request, and the spend it reserves (nano-units, for settling)."""

    checks: tuple[Check, ...]
    estimated_tokens: int
    estimated_spend: int
    price: LimitsSettings.Price | None


class LimitPolicy:
    """Resolves settings into checks; pure and cached, shared by both backends."""

    def __init__(self, settings: LimitsSettings) -> None:
        self.settings = settings
        self.spend_unit = settings.spend_unit
        self._principals = _ordered(settings.principals)
        self._models = _ordered(settings.models)
        self._prices = _ordered(settings.prices)
        self._pairs = [
            (compile_pattern(pm.principal), compile_pattern(pm.model), pm)
            for pm in settings.principal_models
        ]
        self._limits = lru_cache(maxsize=65_536)(self._resolve)

    # -- public ----------------------------------------------------------------------------
    def plan(self, request: LimitRequest) -> Plan:
        """The checks for ``request``; raises ConfigError if a spend budget cannot be priced."""
        if request.estimated_tokens < 0 or request.estimated_cost < 0:
            raise InputError("estimated tokens and cost must not be negative")
        if not math.isfinite(request.estimated_cost):
            raise InputError("estimated cost must be a finite number")
        tokens = request.estimated_tokens
        scoped = self._limits(request.principal, request.model)
        price = self.price(request.model) if request.model is not None else None
        needs_spend = any(
            v.spend_per_day is not None or v.spend_per_month is not None for _, _, _, v in scoped
        )
        spend = 0
        if request.estimated_cost > 0:
            spend = to_nano(request.estimated_cost)
        elif price is not None:
            spend = to_nano(tokens * max(price.input_per_million, price.output_per_million) / 1e6)
        elif needs_spend:
            raise ConfigError(
                f"a spend budget applies to principal {request.principal} on model "
                f"{request.model}, but that model has no price: add it to gateway.limits.prices "
                "(input_per_million, output_per_million) or pass an estimated cost"
            )
        checks: list[Check] = []
        for scope, key, who, values in scoped:
            checks.extend(_checks(scope, key, who, values, tokens=tokens, spend=spend))
        return Plan(tuple(checks), tokens, spend, price)

    def price(self, model: str) -> LimitsSettings.Price | None:
        return _best(self._prices, model)

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int) -> float | None:
        """What a call cost in ``spend_unit`` at the configured price, or None if unpriced."""
        price = self.price(model)
        if price is None:
            return None
        return (
            prompt_tokens * price.input_per_million + completion_tokens * price.output_per_million
        ) / 1e6

    def settled_spend(self, plan: Plan, actual_tokens: int, actual_cost: float) -> int:
        """Spend to charge at settlement, in nano-units.

        An explicit cost wins; otherwise tokens are priced at the dearer of the model's two
        rates; with neither, the reserved estimate stands, so a budget is never left unpaid.
        """
        if actual_cost > 0:
            return to_nano(actual_cost)
        if plan.price is not None:
            rate = max(plan.price.input_per_million, plan.price.output_per_million)
            return to_nano(actual_tokens * rate / 1e6)
        return plan.estimated_spend

    # -- resolution ------------------------------------------------------------------------
    def _resolve(
        self, principal: str, model: str | None
    ) -> tuple[tuple[Scope, str, str, _Values], ...]:
        s = self.settings
        p = quote(principal, safe="")
        out: list[tuple[Scope, str, str, _Values]] = [
            (Scope.TOTAL, "t", "for the gateway", s.total),
            (
                Scope.PRINCIPAL,
                f"p/{p}",
                f"for principal {principal}",
                _merge(s.principal_defaults, _best(self._principals, principal)),
            ),
        ]
        if model is not None:
            m = quote(model, safe="")
            out.append(
                (
                    Scope.MODEL,
                    f"m/{m}",
                    f"for model {model}",
                    _merge(s.model_defaults, _best(self._models, model)),
                )
            )
            for p_pat, m_pat, pair in self._pairs:
                if p_pat.matches(principal) and m_pat.matches(model):
                    who = f"for principal {principal} on model {model}"
                    out.append((Scope.PRINCIPAL_MODEL, f"pm/{p}/{m}", who, pair))
                    break
        return tuple(out)


def to_nano(amount: float) -> int:
    """Spend in nano-units, rounded up: an estimate never under-reserves."""
    return math.ceil(round(amount * NANO, 3))


def from_nano(amount: int) -> float:
    return amount / NANO


def _checks(
    scope: Scope, key: str, who: str, v: _Values, *, tokens: int, spend: int
) -> list[Check]:
    out: list[Check] = []
    if v.requests is not None:
        burst = v.burst if v.burst is not None else max(v.requests, 1)
        out.append(
            Check(scope, Kind.REQUESTS, f"{key}/requests", v.requests, 1, who,
                  period=v.interval_seconds, burst=burst)
        )
    budgets: list[tuple[Kind, int | None, int]] = [
        (Kind.TOKENS_MINUTE, v.tokens_per_minute, tokens),
        (Kind.TOKENS_DAY, v.tokens_per_day, tokens),
        (Kind.SPEND_DAY, _nano_or_none(v.spend_per_day), spend),
        (Kind.SPEND_MONTH, _nano_or_none(v.spend_per_month), spend),
    ]
    for kind, limit, amount in budgets:
        if limit is not None:
            out.append(Check(scope, kind, f"{key}/{kind.value}", limit, amount, who))
    if v.concurrent is not None:
        out.append(Check(scope, Kind.CONCURRENT, f"{key}/concurrent", v.concurrent, 1, who))
    return out


def _nano_or_none(amount: float | None) -> int | None:
    return None if amount is None else math.floor(round(amount * NANO, 3))


def _merge(defaults: _Values, override: _Values | None) -> _Values:
    if override is None:
        return defaults
    return defaults.model_copy(
        update={name: getattr(override, name) for name in override.model_fields_set}
    )


def _ordered(table: dict[str, _T]) -> list[tuple[ResourcePattern, int, _T]]:
    """Patterns, most specific first: exact names, then by literal length, then as written."""
    entries = [(compile_pattern(text), index, value) for index, (text, value) in enumerate(
        table.items())]
    entries.sort(key=lambda e: (not e[0].exact, -len(e[0].text.replace("*", "")), e[1]))
    return entries


def _best(entries: list[tuple[ResourcePattern, int, _T]], name: str) -> _T | None:
    for pattern, _, value in entries:
        if pattern.matches(name):
            return value
    return None


def _seconds(value: float) -> str:
    return f"{value:g} s"
