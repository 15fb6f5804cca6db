"""Route schemas as pure functions: any bytes give a Checked value or one RequestInvalid."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tsuba.core.config import ValidationSettings
from tsuba.gateway.validation import Checked, RequestInvalid, estimate_tokens, parse

LIMITS = ValidationSettings()
ROUTES = ["chat", "completions", "embeddings", "predict"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner,
                                                                max_size=5),
    max_leaves=30,
)

message = st.fixed_dictionaries(
    {"role": st.sampled_from(["system", "user", "assistant", "tool", "root", ""])},
    optional={"content": st.one_of(st.none(), st.text(max_size=50), json_values),
              "name": st.text(max_size=10)},
)
chat_like = st.fixed_dictionaries(
    {},
    optional={
        "model": st.one_of(st.text(max_size=30), st.integers()),
        "messages": st.lists(message, max_size=4),
        "max_tokens": st.integers(-5, 100_000),
        "n": st.integers(-1, 20),
        "temperature": st.floats(-1, 3, allow_nan=False),
        "stream": st.one_of(st.booleans(), st.text(max_size=3)),
        "stop": st.one_of(st.text(max_size=5), st.lists(st.text(max_size=5), max_size=20)),
        "extra": json_values,
    },
)


def _check(route: str, raw: bytes) -> None:
    try:
        out = parse(route, raw, LIMITS)
    except RequestInvalid as exc:
        assert exc.message and "\n" not in exc.message
        return
    assert isinstance(out, Checked) and isinstance(out.body, dict)
    assert out.input_chars >= 0 and out.choices >= 1
    assert estimate_tokens(out, 100) >= 1


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(route=st.sampled_from(ROUTES), raw=st.binary(max_size=200))
def test_arbitrary_bytes(route: str, raw: bytes) -> None:
    _check(route, raw)


@settings(max_examples=300, deadline=None)
@given(route=st.sampled_from(ROUTES), value=json_values)
def test_arbitrary_json(route: str, value: Any) -> None:
    _check(route, json.dumps(value).encode())


@settings(max_examples=400, deadline=None)
@given(body=chat_like)
def test_chat_shaped_json(body: dict[str, Any]) -> None:
    raw = json.dumps(body).encode()
    try:
        out = parse("chat", raw, LIMITS)
    except RequestInvalid:
        return
    # What passed is what an OpenAI upstream accepts: the fields it knows, in range.
    assert set(out.body) <= {"model", "messages", "max_tokens", "n", "temperature", "stream",
                             "stop"}
    assert isinstance(out.body["model"], str) and out.body["messages"]
    assert all(m["role"] in ("system", "user", "assistant", "tool") for m in out.body["messages"])
    assert out.body.get("max_tokens") is None or 1 <= out.body["max_tokens"] <= 32_768


def test_truncated_request_is_invalid() -> None:
    raw = json.dumps({"model": "demo", "messages": [{"role": "user", "content": "x"}]}).encode()
    for cut in range(len(raw)):
        with pytest.raises(RequestInvalid):
            parse("chat", raw[:cut], LIMITS)
    assert parse("chat", raw, LIMITS).model == "demo"


def test_estimate_covers_prompt_and_every_choice() -> None:
    out = parse("chat", json.dumps({"model": "m", "messages": [
        {"role": "user", "content": "x" * 400}], "max_tokens": 50, "n": 2}).encode(), LIMITS)
    assert estimate_tokens(out, 999) == 101 + 100
    out = parse("chat", b'{"model": "m", "messages": [{"role": "user", "content": ""}]}', LIMITS)
    assert estimate_tokens(out, 999) == 1 + 999
