"""Operators, deanonymize and the streaming restorer, with a real local key store."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tsuba.core.errors import DecryptionError, InputError
from tsuba.guards.anonymize import (
    Encrypt,
    Hash,
    Mask,
    MemoryMappingStore,
    Redact,
    Replace,
    StreamRestorer,
    anonymize,
    deanonymize,
)
from tsuba.guards.pii import analyze
from tsuba.guards.types import Finding

TEXT = "Olga Brandt (olga@example.net) paid with 4012 8888 8888 1881; Olga Brandt agreed."


def test_numbered_placeholders_are_consistent_and_reversible() -> None:
    store = MemoryMappingStore()
    out = anonymize(TEXT, analyze(TEXT), session="s1", store=store)
    assert out.text.count("<PERSON_1>") == 2
    assert "<EMAIL_ADDRESS_1>" in out.text and "<CREDIT_CARD_1>" in out.text
    assert "olga@example.net" not in out.text
    assert deanonymize(out.text, mapping=store.mapping("s1")) == TEXT
    # a second turn of the same session reuses the numbers; another session starts over
    again = anonymize("mail olga@example.net", analyze("mail olga@example.net"),
                      session="s1", store=store)
    assert again.text == "mail <EMAIL_ADDRESS_1>"
    other = anonymize("mail ivo@example.net", analyze("mail ivo@example.net"),
                      session="s2", store=store)
    assert other.text == "mail <EMAIL_ADDRESS_1>"
    assert store.mapping("s2") == {"<EMAIL_ADDRESS_1>": "ivo@example.net"}


def test_redact_mask_and_plain_replace() -> None:
    findings = analyze(TEXT)
    ops = {"CREDIT_CARD": Mask(keep_last=4), "EMAIL_ADDRESS": Redact(), "DEFAULT": Replace(False)}
    out = anonymize(TEXT, findings, ops)
    assert out.text == "<PERSON> () paid with **** **** **** 1881; <PERSON> agreed."
    kinds = {(r.entity_type, r.operator) for r in out.items}
    assert kinds == {("PERSON", "replace"), ("EMAIL_ADDRESS", "redact"), ("CREDIT_CARD", "mask")}
    for item in out.items:  # offsets point into the anonymized text
        assert out.text[item.start : item.end] in ("<PERSON>", "", "**** **** **** 1881")


def test_keyed_hash_is_stable_and_keyed(keys) -> None:  # type: ignore[no-untyped-def]
    f = [Finding(0, 4, "PERSON", 1.0, "t")]
    a = anonymize("Olga met", f, Hash(keys)).text
    b = anonymize("Olga met", f, Hash(keys)).text
    assert a == b and "Olga" not in a and len(a.split()[0]) == 32
    keys.rotate("pseudonym")
    assert anonymize("Olga met", f, Hash(keys)).text != a


def test_encrypt_round_trip_and_tampering(keys) -> None:  # type: ignore[no-untyped-def]
    out = anonymize(TEXT, analyze(TEXT), Encrypt(keys, aad=b"tenant-1"))
    assert "olga@example.net" not in out.text and "<EMAIL_ADDRESS:enc:" in out.text
    assert deanonymize(out.text, keys=keys, aad=b"tenant-1") == TEXT
    with pytest.raises(DecryptionError):
        deanonymize(out.text, keys=keys, aad=b"tenant-2")
    relabelled = out.text.replace("<EMAIL_ADDRESS:enc:", "<PERSON:enc:", 1)
    with pytest.raises(DecryptionError):
        deanonymize(relabelled, keys=keys, aad=b"tenant-1")
    start = out.text.index(":enc:") + 30
    flipped = out.text[:start] + ("A" if out.text[start] != "A" else "B") + out.text[start + 1 :]
    with pytest.raises(DecryptionError):
        deanonymize(flipped, keys=keys, aad=b"tenant-1")
    assert deanonymize(flipped, keys=keys, aad=b"tenant-1", strict=False) != TEXT


def test_store_needs_a_session_and_findings_inside_the_text() -> None:
    with pytest.raises(InputError, match="session"):
        anonymize("x", [], store=MemoryMappingStore())
    with pytest.raises(InputError, match="outside"):
        anonymize("abc", [Finding(1, 9, "PERSON", 1.0, "t")])


MAPPING = {"<PERSON_1>": "Olga Brandt", "<EMAIL_ADDRESS_12>": "olga@example.net"}
RESPONSE = "Dear <PERSON_1>, we wrote to <EMAIL_ADDRESS_12> about <b>x</b> and <UNKNOWN_3> 3 < 4."


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(RESPONSE)), max_size=12))
def test_stream_restorer_matches_whole_text_for_any_chunking(cuts: list[int]) -> None:
    points = sorted(set(cuts))
    chunks = [RESPONSE[a:b] for a, b in zip([0, *points], [*points, len(RESPONSE)], strict=True)]
    r = StreamRestorer(MAPPING)
    streamed = "".join(r.feed(c) for c in chunks) + r.flush()
    assert streamed == deanonymize(RESPONSE, mapping=MAPPING)
    assert "Olga Brandt" in streamed and "<UNKNOWN_3>" in streamed


def test_stream_restorer_releases_text_that_cannot_be_a_placeholder() -> None:
    r = StreamRestorer(MAPPING)
    assert r.feed("a < b and <PER") == "a < b and "
    assert r.feed("SON_1>!") == "Olga Brandt!"
    assert r.feed("<" + "A" * 100) == "<" + "A" * 100  # longer than any placeholder
