"""Anomaly detection: per-principal baselines that learn what normal is, online and in batch.

Online: activity is cut into buckets (one minute by default) per principal; each active
bucket gives features (requests, tokens, errors, error rate, distinct models, distinct
prompts, authentication failures) compared with that principal's exponentially weighted
mean and variance.  A bucket whose features stand ``threshold`` deviations above the
baseline, after a warm-up, raises an alert naming the features and their scores; so does
activity in an hour of the day the principal has not been seen in.  Only active buckets
update a baseline: it learns how a principal behaves when it works, not how often.

Batch: an IsolationForest (scikit-learn, optional) over per-principal feature vectors of a
period flags the principals least like the others, with the features furthest from the
median.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tsuba.core.errors import ConfigError, InputError
from tsuba.core.events import EventClass, Outcome, SecurityEvent, Severity
from tsuba.soar.rules import Alert

FEATURES = ("requests", "tokens", "errors", "error_rate", "models", "prompts", "auth_failures")
RULE_ONLINE = "tsuba.anomaly.baseline"
RULE_HOUR = "tsuba.anomaly.unusual_hour"
RULE_BATCH = "tsuba.anomaly.outlier"
_ATLAS = ("AML.T0040",)
_OWASP = ("LLM10",)


@dataclass
class _Bucket:
    index: int
    first: datetime
    requests: int = 0
    tokens: float = 0.0
    errors: int = 0
    auth_failures: int = 0
    models: set[str] = field(default_factory=set)
    prompts: set[str] = field(default_factory=set)
    event_ids: list[str] = field(default_factory=list)

    def features(self) -> dict[str, float]:
        total = self.requests + self.auth_failures
        return {
            "requests": float(self.requests),
            "tokens": self.tokens,
            "errors": float(self.errors),
            "error_rate": self.errors / total if total else 0.0,
            "models": float(len(self.models)),
            "prompts": float(len(self.prompts)),
            "auth_failures": float(self.auth_failures),
        }


@dataclass
class _Baseline:
    n: int = 0
    mean: dict[str, float] = field(default_factory=dict)
    var: dict[str, float] = field(default_factory=dict)
    hours: list[int] = field(default_factory=lambda: [0] * 24)
    bucket: _Bucket | None = None
    since: datetime | None = None


def _tokens(event: SecurityEvent) -> float:
    value = event.attributes.get("tokens")
    if isinstance(value, dict):
        value = value.get("total")
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    return 0.0


@dataclass(frozen=True)
class AnomalySettings:
    bucket_seconds: int = 60
    alpha: float = 0.05  # weight of the newest bucket in the baseline
    threshold: float = 6.0  # deviations above the mean that stand out
    warmup: int = 20  # buckets of history before a principal can be anomalous
    min_ratio: float = 3.0  # and the value must be at least this many times the mean
    hour_warmup: int = 200  # buckets of history before an hour of the day can be unusual
    hour_days: int = 2  # ... and days: one day has not shown all of a principal's hours
    max_principals: int = 200_000

    def __post_init__(self) -> None:
        if self.bucket_seconds < 1 or not 0 < self.alpha < 1 or self.threshold <= 0:
            raise InputError("anomaly settings: bucket_seconds >= 1, 0 < alpha < 1, "
                             "threshold > 0")


class BaselineDetector:
    """Online per-principal baselines over the event stream (pure: no I/O)."""

    def __init__(self, settings: AnomalySettings | None = None) -> None:
        self.settings = settings or AnomalySettings()
        self._principals: dict[str, _Baseline] = {}

    def process(self, event: SecurityEvent) -> list[Alert]:
        actor = event.actor
        if not actor or event.event_class not in (
            EventClass.API_ACTIVITY, EventClass.AUTHENTICATION
        ):
            return []
        if event.event_class is EventClass.API_ACTIVITY and event.activity == "rate_limit":
            return []  # admissions are not requests of their own
        index = int(event.time.timestamp()) // self.settings.bucket_seconds
        base = self._principals.get(actor)
        if base is None:
            if len(self._principals) >= self.settings.max_principals:
                del self._principals[next(iter(self._principals))]
            base = self._principals[actor] = _Baseline()
        alerts: list[Alert] = []
        bucket = base.bucket
        if bucket is None or index > bucket.index:
            if bucket is not None:
                alerts.extend(self._close(actor, base, bucket))
            bucket = base.bucket = _Bucket(index=index, first=event.time)
        bucket.event_ids.append(event.id)
        if event.event_class is EventClass.AUTHENTICATION:
            if event.outcome is Outcome.FAILURE:
                bucket.auth_failures += 1
            return alerts
        bucket.requests += 1
        bucket.tokens += _tokens(event)
        if event.outcome is Outcome.FAILURE:
            bucket.errors += 1
        if event.resource:
            bucket.models.add(event.resource)
        prompt = event.attributes.get("prompt_hash")
        if isinstance(prompt, str):
            bucket.prompts.add(prompt)
        return alerts

    def flush(self) -> list[Alert]:
        """Close every open bucket (end of a replay)."""
        alerts: list[Alert] = []
        for actor, base in self._principals.items():
            if base.bucket is not None:
                alerts.extend(self._close(actor, base, base.bucket))
                base.bucket = None
        return alerts

    def run(self, events: Iterable[SecurityEvent]) -> list[Alert]:
        alerts: list[Alert] = []
        for event in events:
            alerts.extend(self.process(event))
        return alerts + self.flush()

    def _close(self, actor: str, base: _Baseline, bucket: _Bucket) -> list[Alert]:
        cfg = self.settings
        values = bucket.features()
        alerts: list[Alert] = []
        if base.n >= cfg.warmup:
            scores: dict[str, dict[str, float]] = {}
            failures = values["errors"] + values["auth_failures"]
            for name, x in values.items():
                if name == "error_rate" and failures < 3:
                    continue  # one failed call of two is not an error storm
                mean, var = base.mean[name], base.var[name]
                floor = max(1.0, 0.1 * mean) if name != "error_rate" else 0.05
                z = (x - mean) / max(math.sqrt(var), floor)
                if z >= cfg.threshold and x >= cfg.min_ratio * max(mean, floor):
                    scores[name] = {"value": round(x, 3), "baseline": round(mean, 3),
                                    "z": round(z, 1)}
            if scores:
                alerts.append(self._alert(RULE_ONLINE, "Principal behaves unlike its baseline",
                                          actor, bucket, scores))
        hour = bucket.first.astimezone(UTC).hour
        if base.since is None:
            base.since = bucket.first
        learned = (bucket.first - base.since).total_seconds() >= cfg.hour_days * 86400
        if learned and base.n >= cfg.hour_warmup and base.hours[hour] == 0:
            alerts.append(self._alert(RULE_HOUR, "Principal active at an unusual hour", actor,
                                      bucket, {"hour": {"value": hour, "baseline": 0, "z": 0}}))
        # Anomalous buckets still teach the baseline, slowly: a lasting change becomes normal.
        for name, x in values.items():
            if base.n == 0:
                base.mean[name], base.var[name] = x, 0.0
                continue
            diff = x - base.mean[name]
            base.mean[name] += cfg.alpha * diff
            base.var[name] = (1 - cfg.alpha) * (base.var[name] + cfg.alpha * diff * diff)
        base.hours[hour] += 1
        base.n += 1
        return alerts

    def _alert(
        self, rule: str, title: str, actor: str, bucket: _Bucket,
        scores: dict[str, dict[str, Any]],
    ) -> Alert:
        names = ", ".join(
            f"{k}={v['value']} (baseline {v['baseline']}, z {v['z']})" for k, v in scores.items()
        )
        return Alert(
            rule_id=rule,
            title=title,
            severity=Severity.MEDIUM,
            time=bucket.first,
            first_seen=bucket.first,
            group={"actor": actor},
            count=len(bucket.event_ids),
            event_ids=tuple(bucket.event_ids[-50:]),
            message=f"{title}: {names} for actor={actor}",
            owasp_llm=_OWASP,
            mitre_atlas=_ATLAS,
            actor=actor,
        )


def principal_features(events: Iterable[SecurityEvent]) -> dict[str, dict[str, float]]:
    """Per-principal totals over a period: the batch model's input."""
    out: dict[str, _Bucket] = {}
    for event in events:
        if not event.actor:
            continue
        bucket = out.setdefault(event.actor, _Bucket(index=0, first=event.time))
        if event.event_class is EventClass.AUTHENTICATION:
            bucket.auth_failures += event.outcome is Outcome.FAILURE
        elif event.event_class is EventClass.API_ACTIVITY and event.activity != "rate_limit":
            bucket.requests += 1
            bucket.tokens += _tokens(event)
            bucket.errors += event.outcome is Outcome.FAILURE
            if event.resource:
                bucket.models.add(event.resource)
            prompt = event.attributes.get("prompt_hash")
            if isinstance(prompt, str):
                bucket.prompts.add(prompt)
    return {actor: b.features() for actor, b in out.items()}


def batch_outliers(
    features: dict[str, dict[str, float]],
    *,
    contamination: float = 0.01,
    seed: int = 0,
    at: datetime | None = None,
) -> list[Alert]:
    """Principals an IsolationForest isolates first, each with the features that stand out."""
    try:
        import numpy as np  # noqa: PLC0415
        from sklearn.ensemble import IsolationForest  # noqa: PLC0415
    except ImportError as exc:
        raise ConfigError(
            "batch anomaly detection needs scikit-learn: pip install 'tsuba[train]'"
        ) from exc
    if len(features) < 10:
        raise InputError("batch anomaly detection needs at least 10 principals to compare")
    actors = sorted(features)
    matrix = np.log1p(np.array([[features[a][f] for f in FEATURES] for a in actors]))
    model = IsolationForest(contamination=contamination, random_state=seed, n_estimators=200)
    flags = model.fit_predict(matrix)
    median = np.median(matrix, axis=0)
    spread = np.median(np.abs(matrix - median), axis=0) * 1.4826 + 1e-9
    when = at or datetime.now(UTC)
    alerts: list[Alert] = []
    for row, actor, flag in zip(matrix, actors, flags, strict=True):
        if flag != -1:
            continue
        robust = (row - median) / spread
        top = sorted(range(len(FEATURES)), key=lambda i: -abs(robust[i]))[:3]
        stood = ", ".join(
            f"{FEATURES[i]}={features[actor][FEATURES[i]]:g} (robust z {robust[i]:.1f})"
            for i in top
        )
        alerts.append(Alert(
            rule_id=RULE_BATCH, title="Principal unlike the others", severity=Severity.MEDIUM,
            time=when, first_seen=when, group={"actor": actor}, count=1, event_ids=(),
            message=f"Principal unlike the others: {stood} for actor={actor}",
            owasp_llm=_OWASP, mitre_atlas=_ATLAS, actor=actor,
        ))
    return alerts
