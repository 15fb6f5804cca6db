"""PII recognizers on sentences written for these tests (not copied from any dataset)."""

from __future__ import annotations

import pytest

from tsuba.core.errors import ConfigError
from tsuba.guards.pii import Analyzer, analyze, recognizer_from_config


def found(text: str, language: str = "en") -> set[tuple[str, str]]:
    return {(text[f.start : f.end], f.entity_type) for f in analyze(text, language=language)}


@pytest.mark.parametrize(
    ("text", "value", "entity"),
    [
        ("write to maria.lopez@correo.example.org today", "maria.lopez@correo.example.org",
         "EMAIL_ADDRESS"),
        ("my card is 4012 8888 8888 1881 thanks", "4012 8888 8888 1881", "CREDIT_CARD"),
        ("pay to DE89 3704 0044 0532 0130 00 please", "DE89 3704 0044 0532 0130 00", "IBAN_CODE"),
        ("my ssn: 536-22-1234", "536-22-1234", "US_SSN"),
        ("host 203.0.113.77 refused", "203.0.113.77", "IP_ADDRESS"),
        ("host 2001:db8:85a3::8a2e:370:7334 refused", "2001:db8:85a3::8a2e:370:7334",
         "IP_ADDRESS"),
        ("see https://intranet.example.com/people?id=7 now", "https://intranet.example.com/people?id=7",
         "URL"),
        ("call me at +44 20 7946 0018 tonight", "+44 20 7946 0018", "PHONE_NUMBER"),
        ("phone (415) 555-2671 after six", "(415) 555-2671", "PHONE_NUMBER"),
        ("send btc to 1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2", "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2",
         "CRYPTO"),
        ("NHS number 943 476 5919 on file", "943 476 5919", "UK_NHS"),
        ("passport number 912803456 expires", "912803456", "US_PASSPORT"),
        ("he was born on 14 February 1987 in a village", "14 February 1987", "DATE_TIME"),
        ("Please ask Dr. Ingrid Halvorsen about it", "Ingrid Halvorsen", "PERSON"),
        ("the parcel goes to 1600 Pennsylvania Avenue NW tomorrow", "1600 Pennsylvania Avenue",
         "ADDRESS"),
        ("we flew from Toronto to Lisbon", "Lisbon", "LOCATION"),
    ],
)
def test_english_entities(text: str, value: str, entity: str) -> None:
    hits = found(text)
    assert any(entity == e and (value in v or v in value) for v, e in hits), hits


@pytest.mark.parametrize(
    ("text", "language", "value", "entity"),
    [
        ("Meine Steuer-ID lautet 86095742719.", "de", "86095742719", "DE_TAX_ID"),
        ("Frau Annegret Schulze wohnt in der Lindenstraße 12, 04109 Leipzig.", "de",
         "Lindenstraße 12, 04109 Leipzig", "ADDRESS"),
        ("Numéro de sécurité sociale : 2 55 08 14 168 025 38", "fr",
         "2 55 08 14 168 025 38", "FR_NIR"),
        ("J'habite au 8 rue des Lilas, 69003 Lyon.", "fr", "8 rue des Lilas", "ADDRESS"),
        ("Mi DNI es 54362315K y vivo en Sevilla.", "es", "54362315K", "ES_DNI"),
        ("NIE X1234567L del solicitante", "es", "X1234567L", "ES_NIE"),
        ("Codice fiscale RSSMRA85T10A562S del cliente", "it", "RSSMRA85T10A562S",
         "IT_FISCAL_CODE"),
        ("Mijn BSN is 111222333.", "nl", "111222333", "NL_BSN"),
        ("Henkilötunnus 131052-308T on salainen", "en", "131052-308T", "FI_HETU"),
        ("PESEL 44051401359 pacjenta", "en", "44051401359", "PL_PESEL"),
        ("鈴木一郎様、お問い合わせありがとうございます。", "ja", "鈴木一郎", "PERSON"),
        ("住所は東京都千代田区丸の内1-9-1です。", "ja", "東京都千代田区丸の内1-9-1", "ADDRESS"),
        ("マイナンバーは1234 5678 9018です。", "ja", "1234 5678 9018", "JP_MY_NUMBER"),
        ("生年月日は1990年4月1日です。", "ja", "1990年4月1日", "DATE_TIME"),
    ],
)
def test_other_languages(text: str, language: str, value: str, entity: str) -> None:
    hits = found(text, language)
    assert any(entity == e and (value in v or v in value) for v, e in hits), hits


@pytest.mark.parametrize(
    "text",
    [
        "2024-03-18T09:12:44.512Z INFO worker-3 started",
        "[2023-11-02 17:45:01] ERROR upstream timed out",
        "upgraded from 1.2.3 to v2.0.1-rc1 yesterday",
        "commit 4f9c2b7e1d3a5c6b8e9f0a1b2c3d4e5f6a7b8c9d merged",
        "request 3fa85f64-5717-4562-b3fc-2c963f66afa6 done",
        "HTTP/1.1 404 Not Found",
        "downloaded 734003200 bytes (700.0 MB)",
        "Order #482913377 shipped",
        "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    ],
)
def test_machine_strings_are_not_pii(text: str) -> None:
    assert analyze(text) == [], found(text)


def test_invalid_checksums_are_not_reported() -> None:
    assert not found("card 4012 8888 8888 1882 and IBAN DE89 3704 0044 0532 0130 01")
    assert not found("NIE X1234567A")  # wrong check letter


def test_context_raises_a_weak_number_over_the_threshold() -> None:
    bare = "reference 111222333 attached"
    assert found(bare, "nl") == set()
    assert ("111222333", "NL_BSN") in found("mijn burgerservicenummer: 111222333", "nl")


def test_offsets_are_str_indices_with_astral_characters() -> None:
    text = "🙂🙂 mail 😀 ana@example.com"
    (f,) = analyze(text, ["EMAIL_ADDRESS"])
    assert text[f.start : f.end] == "ana@example.com"


def test_empty_text_and_entity_filter() -> None:
    assert analyze("") == []
    hits = analyze("mail ana@example.com or call +1 415 555 2671", ["PHONE_NUMBER"])
    assert {f.entity_type for f in hits} == {"PHONE_NUMBER"}


def test_allow_and_deny_lists() -> None:
    an = Analyzer(allow=["support@tsuba.example"], deny={"PROJECT": ["Bluebird"]})
    hits = an.analyze("write support@tsuba.example or ana@example.com about bluebird")
    got = {(f.entity_type, f.recognizer) for f in hits}
    assert ("EMAIL_ADDRESS", "email") in got and ("PROJECT", "deny_list") in got
    assert all(f.start != 6 for f in hits)  # the allowed address is not reported


def test_custom_recognizer_from_configuration() -> None:
    an = Analyzer()
    an.add(
        recognizer_from_config(
            {
                "entity": "EMPLOYEE_ID",
                "pattern": r"\bEMP-[0-9]{6}\b",
                "score": 0.4,
                "context": ["employee"],
            }
        )
    )
    assert an.analyze("ticket EMP-123456 closed") == []
    (f,) = an.analyze("employee EMP-123456 left")
    assert f.entity_type == "EMPLOYEE_ID" and f.score > 0.5
    card = recognizer_from_config(
        {"entity": "LOYALTY_CARD", "pattern": r"\b[0-9]{16}\b", "validator": "luhn"}
    )
    an2 = Analyzer(recognizers=[card])
    assert [f.entity_type for f in an2.analyze("4012888888881881")] == ["LOYALTY_CARD"]
    assert an2.analyze("4012888888881882") == []


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"pattern": "x"}, "needs 'entity'"),
        ({"entity": "lower", "pattern": "x"}, "UPPER_SNAKE_CASE"),
        ({"entity": "X", "pattern": "("}, "bad pattern"),
        ({"entity": "X", "pattern": "x", "validator": "os.system"}, "unknown validator"),
        ({"entity": "X", "pattern": "x", "validator": "stdnum.nosuch"}, "does not exist"),
        ({"entity": "X", "pattern": "x", "score": 2}, "score"),
    ],
)
def test_bad_custom_recognizers_are_config_errors(spec: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        recognizer_from_config(spec)
