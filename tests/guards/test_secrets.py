"""Secrets: each provider's format is named; placeholders and prose are not secrets."""

from __future__ import annotations

import base64
import json
import secrets as rnd
import string

import pytest

from tsuba.guards import secrets


def _r(n: int, chars: str = string.ascii_letters + string.digits) -> str:
    return "".join(rnd.choice(chars) for _ in range(n))


def _jwt() -> str:
    def seg(obj: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{seg({'alg': 'HS256', 'typ': 'JWT'})}.{seg({'sub': 'u1'})}.{_r(43)}"


CASES = [
    ("aws_access_key_id", lambda: "AKIA" + _r(16, string.ascii_uppercase + "234567")),
    ("gcp_api_key", lambda: "AIza" + _r(35)),
    ("github_token", lambda: "ghp_" + _r(36)),
    ("gitlab_token", lambda: "glpat-" + _r(20)),
    ("slack_token", lambda: "xoxb-" + _r(11, string.digits) + "-" + _r(24)),
    ("stripe_key", lambda: "sk_live_" + _r(24)),
    ("openai_api_key", lambda: "sk-proj-" + _r(64)),
    ("anthropic_api_key", lambda: "sk-ant-api03-" + _r(95)),
    ("huggingface_token", lambda: "hf_" + _r(34, string.ascii_letters)),
    ("azure_storage_key", lambda: "DefaultEndpointsProtocol=https;AccountKey=" + _r(86) + "=="),
    ("jwt", _jwt),
    ("url_credentials", lambda: f"mysql://root:{_r(12)}@10.0.0.5/app"),
]


@pytest.mark.parametrize(("kind", "make"), CASES, ids=[c[0] for c in CASES])
def test_each_provider_is_named(kind: str, make) -> None:
    value = make()
    text = f"config dump:\n  value = {value}\nend"
    kinds = {f.recognizer for f in secrets.scan(text)}
    assert kind in kinds, (kind, kinds)
    assert all(f.entity_type == "SECRET" for f in secrets.scan(text))


def test_private_key_block_spans_to_its_end_line() -> None:
    block = "-----BEGIN EC PRIVATE KEY-----\n" + _r(64) + "\n-----END EC PRIVATE KEY-----"
    text = "key:\n" + block + "\nthanks"
    (f,) = secrets.scan(text)
    assert f.recognizer == "private_key" and text[f.start : f.end] == block


def test_high_entropy_value_needs_a_secret_like_name() -> None:
    value = _r(28)
    assert [f.recognizer for f in secrets.scan(f"api_key = '{value}'")] == ["generic_secret"]
    assert secrets.scan(f"greeting = '{value}'") == []
    assert secrets.scan("password = 'changeme'") == []
    assert secrets.scan("password: <your password here>") == []


@pytest.mark.parametrize(
    "text",
    [
        "The token ring network was retired in 1998.",
        "git commit 9fceb02d0ae598e95dc970b74767f19372d61af8",
        "Set your API key in the dashboard, then restart.",
        "jwt: eyJnotreally.eyJ.nope",
        "postgres://localhost:5432/app",
    ],
)
def test_prose_and_hashes_are_not_secrets(text: str) -> None:
    assert secrets.scan(text) == []


def test_guard_returns_the_scanner_triple() -> None:
    key = "ghp_" + _r(36)
    sanitized, valid, risk = secrets.guard(f"use {key} now")
    assert (sanitized, valid) == ("use <SECRET:github_token> now", False) and risk > 0.9
    assert tuple(secrets.guard("nothing here")) == ("nothing here", True, 0.0)
