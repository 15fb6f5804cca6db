"""Held-out PII evaluation set: Faker values in sentence templates, plus hard negatives.

The detector is never tuned on this set; its templates were written apart from the
detector's cue lists, and the seed and the reference date are frozen so every run, on
any day and in any time zone, scores the same documents (Faker's own date helpers count
back from today in local time, so dates here come from fixed ranges in UTC).
Hard negatives are machine strings that are not PII (log timestamps, version strings,
order ids, git SHAs and other hashes, UUIDs, HTTP status lines, file sizes); every
prediction on them counts as a false positive.

    python bench/pii_heldout.py --show 20    # print a sample
"""

# ruff: noqa: E501, RUF001  (templates and generators read best on one line)
from __future__ import annotations

import argparse
import hashlib
import random
import re
import string
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from faker import Faker

SEED = 20261125
REFERENCE = datetime(2026, 11, 25, tzinfo=UTC)  # "today" for every generated date
# Ranges as POSIX seconds, which Faker takes as they are.
NOW = int(REFERENCE.timestamp())
BORN_FROM = int(REFERENCE.replace(year=REFERENCE.year - 115).timestamp())  # date_of_birth's range
DECADE_START = int(datetime(REFERENCE.year - REFERENCE.year % 10, 1, 1, tzinfo=UTC).timestamp())
PER_LOCALE = 160
NEGATIVES = 240
LOCALES = ("en_US", "de_DE", "fr_FR", "es_ES", "ja_JP", "en_GB", "it_IT", "nl_NL")
LANG = {"en_US": "en", "en_GB": "en", "de_DE": "de", "fr_FR": "fr", "es_ES": "es",
        "ja_JP": "ja", "it_IT": "it", "nl_NL": "nl"}


@dataclass(frozen=True)
class Doc:
    text: str
    language: str
    spans: list[tuple[int, int, str]]
    kind: str  # "pii" or "negative"


TEMPLATES: dict[str, list[str]] = {
    "en": [
        "Please update the account of {PERSON}; the new address is {ADDRESS}.",
        "{PERSON} called from {PHONE_NUMBER} about the refund.",
        "Send the contract to {EMAIL_ADDRESS} before Friday, thanks.",
        "Customer {PERSON} (born {DATE_TIME}) paid with card {CREDIT_CARD}.",
        "Wire the deposit to IBAN {IBAN_CODE} and confirm by phone.",
        "The login came from {IP_ADDRESS} at an unusual hour.",
        "She moved to {LOCATION} last year and works remotely now.",
        "Attached is the form for {PERSON}, SSN {US_SSN}.",
        "Our deploy key leaked: {SECRET}",
        "Hi, I'm {PERSON}. You can reach me on {PHONE_NUMBER} or {EMAIL_ADDRESS}.",
        "Ship it to {ADDRESS}, attention {PERSON}.",
        "The report from {URL} mentions {PERSON} twice.",
        "Use token {SECRET} for the staging cluster.",
    ],
    "de": [
        "Bitte senden Sie die Unterlagen an {PERSON}, {ADDRESS}.",
        "Herr {PERSON} ist unter {PHONE_NUMBER} erreichbar.",
        "Meine E-Mail-Adresse lautet {EMAIL_ADDRESS}.",
        "Überweisen Sie den Betrag auf das Konto {IBAN_CODE}.",
        "{PERSON} wurde am {DATE_TIME} geboren und lebt in {LOCATION}.",
        "Die Kreditkarte {CREDIT_CARD} wurde gesperrt.",
        "Der Zugriff erfolgte von der IP {IP_ADDRESS}.",
        "Im Log stand das Passwort: {SECRET}",
        "Frau {PERSON} wohnt jetzt in {LOCATION}.",
    ],
    "fr": [
        "Veuillez contacter {PERSON} au {PHONE_NUMBER}.",
        "Mon adresse est {ADDRESS}.",
        "Écrivez-moi à {EMAIL_ADDRESS} pour le dossier.",
        "Le virement part du compte {IBAN_CODE} demain.",
        "{PERSON} est né le {DATE_TIME} à {LOCATION}.",
        "Numéro de sécurité sociale : {NATIONAL_ID}.",
        "La carte {CREDIT_CARD} a expiré.",
        "Madame {PERSON} habite à {LOCATION} depuis longtemps.",
        "Clé trouvée dans le dépôt : {SECRET}",
    ],
    "es": [
        "Por favor, llame a {PERSON} al {PHONE_NUMBER}.",
        "Mi dirección es {ADDRESS}.",
        "Escríbame a {EMAIL_ADDRESS} cuando pueda.",
        "Transfiera el importe a la cuenta {IBAN_CODE}.",
        "{PERSON} nació el {DATE_TIME} en {LOCATION}.",
        "Mi DNI es {NATIONAL_ID}.",
        "La tarjeta {CREDIT_CARD} fue bloqueada ayer.",
        "La señora {PERSON} vive en {LOCATION}.",
    ],
    "ja": [
        "{PERSON}さんの電話番号は{PHONE_NUMBER}です。",
        "住所は{ADDRESS}です。",
        "メールアドレスは{EMAIL_ADDRESS}です。",
        "{PERSON}様、ご注文ありがとうございます。",
        "担当者は{PERSON}です。連絡先：{EMAIL_ADDRESS}",
        "カード番号{CREDIT_CARD}は利用停止になりました。",
        "{LOCATION}に引っ越しました。",
    ],
    "it": [
        "Si prega di contattare {PERSON} al numero {PHONE_NUMBER}.",
        "Il mio indirizzo è {ADDRESS}.",
        "Il codice fiscale di {PERSON} è {NATIONAL_ID}.",
        "Scrivete a {EMAIL_ADDRESS} per informazioni.",
        "Bonifico sul conto {IBAN_CODE}, grazie.",
        "{PERSON} vive a {LOCATION} da due anni.",
    ],
    "nl": [
        "Neem contact op met {PERSON} via {PHONE_NUMBER}.",
        "Mijn adres is {ADDRESS}.",
        "Mijn BSN is {NATIONAL_ID}.",
        "Stuur de factuur naar {EMAIL_ADDRESS}.",
        "Maak het bedrag over naar {IBAN_CODE}.",
        "{PERSON} woont sinds kort in {LOCATION}.",
    ],
}


def _secret(rng: random.Random) -> str:
    alnum = string.ascii_letters + string.digits

    def r(n: int, chars: str = alnum) -> str:
        return "".join(rng.choice(chars) for _ in range(n))

    kinds = [
        lambda: "AKIA" + r(16, string.ascii_uppercase + "234567"),
        lambda: "ghp_" + r(36),
        lambda: "glpat-" + r(20),
        lambda: "xoxb-" + r(12, string.digits) + "-" + r(12, string.digits) + "-" + r(24),
        lambda: "sk_live_" + r(24),
        lambda: "sk-proj-" + r(48),
        lambda: "sk-ant-api03-" + r(93, alnum + "-_"),
        lambda: "hf_" + r(34, string.ascii_letters),
        lambda: "AIza" + r(35, alnum + "-_"),
        lambda: f"postgres://app:{r(14)}@db.internal:5432/main",
        lambda: "-----BEGIN OPENSSH PRIVATE KEY-----\n" + r(64) + "\n-----END OPENSSH PRIVATE KEY-----",
    ]
    return rng.choice(kinds)()


def _value(fake: Faker, locale: str, kind: str, rng: random.Random) -> str | None:
    if kind == "PERSON":
        return fake.last_name() if rng.random() < 0.2 else fake.name()
    if kind == "ADDRESS":
        return fake.address().replace("\n", ", ")
    if kind == "LOCATION":
        return fake.country() if rng.random() < 0.4 else fake.city()
    if kind == "EMAIL_ADDRESS":
        return fake.email()
    if kind == "PHONE_NUMBER":
        return fake.phone_number()
    if kind == "CREDIT_CARD":
        return fake.credit_card_number()
    if kind == "IBAN_CODE":
        return fake.iban()
    if kind == "DATE_TIME":
        d = fake.date_time_between_dates(BORN_FROM, NOW, tzinfo=UTC).date()
        return d.strftime(rng.choice(["%d.%m.%Y", "%d/%m/%Y", "%Y-%m-%d"]))
    if kind == "IP_ADDRESS":
        return fake.ipv4_public() if rng.random() < 0.7 else fake.ipv6()
    if kind == "URL":
        return fake.url() + fake.uri_path()
    if kind == "US_SSN":
        return fake.ssn()
    if kind == "NATIONAL_ID":
        if locale == "es_ES":
            return fake.nif()
        return fake.ssn() if locale in ("fr_FR", "it_IT", "nl_NL") else None
    if kind == "SECRET":
        return _secret(rng)
    return None


def _fill(template: str, fake: Faker, locale: str, rng: random.Random) -> Doc | None:
    text = ""
    spans: list[tuple[int, int, str]] = []
    pos = 0
    for m in re.finditer(r"\{([A-Z_]+)\}", template):
        text += template[pos : m.start()]
        value = _value(fake, locale, m.group(1), rng)
        if value is None:
            return None
        spans.append((len(text), len(text) + len(value), m.group(1)))
        text += value
        pos = m.end()
    text += template[pos:]
    return Doc(text, LANG[locale], spans, "pii")


def _negative(rng: random.Random, fake: Faker) -> Doc:
    def this_decade() -> datetime:
        return fake.date_time_between_dates(DECADE_START, NOW, tzinfo=UTC)

    def ts() -> str:
        return this_decade().strftime("%Y-%m-%dT%H:%M:%S") + f".{rng.randint(0, 999):03d}Z"

    sha = hashlib.sha1(str(rng.random()).encode()).hexdigest()
    choices = [
        lambda: f"{ts()} INFO worker-{rng.randint(1, 64)} processed job {uuid.UUID(int=rng.getrandbits(128))}",
        lambda: f"[{this_decade():%Y-%m-%d %H:%M:%S}] ERROR request failed after {rng.randint(1, 999)} ms",
        lambda: f"Upgraded libfoo from {rng.randint(0, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 30)} to v{rng.randint(1, 9)}.{rng.randint(0, 9)}.{rng.randint(0, 9)}-rc{rng.randint(1, 4)}",
        lambda: f"Order #{rng.randint(10**7, 10**10)} shipped; tracking {rng.randint(10**11, 10**13)}",
        lambda: f"commit {sha} merged into main",
        lambda: f"sha256:{hashlib.sha256(sha.encode()).hexdigest()}",
        lambda: f"HTTP/1.1 {rng.choice([200, 301, 404, 500, 503])} {rng.choice(['OK', 'Moved Permanently', 'Not Found', 'Internal Server Error'])}",
        lambda: f"Downloaded {rng.randint(1, 999)}.{rng.randint(0, 9)} MB ({rng.randint(10**6, 10**9)} bytes) in {rng.randint(1, 60)}s",
        lambda: f"request_id={uuid.UUID(int=rng.getrandbits(128))} status=200 latency_ms={rng.randint(1, 900)}",
        lambda: f"Build {rng.randint(1000, 99999)} of release {rng.randint(2019, 2026)}.{rng.randint(1, 12)}.{rng.randint(0, 9)} passed {rng.randint(100, 5000)} tests",
        lambda: f"md5 {hashlib.md5(sha.encode()).hexdigest()} size {rng.randint(1, 10**8)}",
        lambda: f"Invoice INV-{rng.randint(2019, 2026)}-{rng.randint(10000, 99999)} total {rng.randint(1, 9999)}.{rng.randint(0, 99):02d} EUR",
        lambda: f"pid {rng.randint(100, 65535)} listening on port {rng.randint(1024, 65535)}",
        lambda: f"Node v{rng.randint(10, 22)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}, npm {rng.randint(6, 10)}.{rng.randint(0, 9)}.{rng.randint(0, 9)}",
    ]
    lines = [rng.choice(choices)() for _ in range(rng.randint(1, 3))]
    return Doc("\n".join(lines), "en", [], "negative")


def generate(per_locale: int = PER_LOCALE, negatives: int = NEGATIVES) -> list[Doc]:
    rng = random.Random(SEED)
    docs: list[Doc] = []
    for locale in LOCALES:
        fake = Faker(locale)
        fake.seed_instance(rng.randint(0, 2**31))
        templates = TEMPLATES[LANG[locale]]
        made = 0
        while made < per_locale:
            doc = _fill(rng.choice(templates), fake, locale, rng)
            if doc is not None:
                docs.append(doc)
                made += 1
    fake = Faker("en_US")
    fake.seed_instance(SEED)
    docs.extend(_negative(rng, fake) for _ in range(negatives))
    rng.shuffle(docs)
    return docs


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--show", type=int, default=10)
    args = parser.parse_args()
    for d in generate()[: args.show]:
        print(d.language, d.kind, repr(d.text), [d.text[s:e] + "/" + t for s, e, t in d.spans])
