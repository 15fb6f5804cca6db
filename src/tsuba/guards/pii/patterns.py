"""Structured entities: formats with a checksum or a grammar (cards, IBANs, SSNs, IPs, ...).

Every checksum comes from python-stdnum (or the standard library's ``ipaddress``); the
regular expressions only find candidates, with bounded repetition and no nested unbounded
quantifiers, so their worst case stays linear in the text.
"""

from __future__ import annotations

import ipaddress
import string

from stdnum import bitcoin, iban, luhn, numdb
from stdnum.gb import nhs
from stdnum.us import ssn

from tsuba.guards.pii.recognizer import PatternRecognizer

# Word edges for identifiers: not inside a longer token, a path, an e-mail or a version.
B = r"(?<![A-Za-z0-9_@/.+\-#:])"
E = r"(?![A-Za-z0-9_@/\-]|\.\d|:\d)"


def _digits(value: str) -> str:
    return "".join(c for c in value if c.isdigit())


# Issuer prefixes (IIN ranges) and lengths of the card networks in use.
_CARD_PREFIXES: tuple[tuple[tuple[str, ...], tuple[int, ...]], ...] = (
    (("4",), (13, 16, 19)),  # Visa
    (("51", "52", "53", "54", "55", "22", "23", "24", "25", "26", "27"), (16,)),  # Mastercard
    (("34", "37"), (15,)),  # American Express
    (("6011", "644", "645", "646", "647", "648", "649", "65"), (16, 19)),  # Discover
    (("352", "353", "354", "355", "356", "357", "358"), (16, 17, 18, 19)),  # JCB
    (("300", "301", "302", "303", "304", "305", "36", "38", "39"), (14, 16)),  # Diners
    (("50", "56", "57", "58", "6"), (12, 13, 14, 15, 16, 17, 18, 19)),  # Maestro
    (("62", "81"), (16, 17, 18, 19)),  # UnionPay
    (("1800", "2131"), (15,)),  # JCB (legacy 15-digit)
)


def valid_card(value: str) -> bool:
    digits = _digits(value)
    if not 12 <= len(digits) <= 19 or len(set(digits)) < 2:  # 0000 0000 ... and friends
        return False
    # The issuer table first: it turns away most numbers before the Luhn loop runs.
    return any(
        len(digits) in lengths and digits.startswith(prefixes)
        for prefixes, lengths in _CARD_PREFIXES
    ) and bool(luhn.is_valid(digits))


# Country codes python-stdnum's IBAN registry knows: an IBAN from elsewhere never validates.
_IBAN_COUNTRIES = frozenset(
    a + b
    for a in string.ascii_uppercase
    for b in string.ascii_uppercase
    if numdb.get("iban").info(a + b)[0][1]
)


def valid_iban(value: str) -> bool:
    # The registry look-up first: hashes and ids that start like an IBAN seldom have a
    # country code, and the check-digit arithmetic is the slow part.
    return iban.compact(value)[:2] in _IBAN_COUNTRIES and bool(iban.is_valid(value))


def valid_ssn(value: str) -> bool:
    digits = _digits(value)
    if len(set(digits)) < 3 or digits in ("123456789", "987654321"):
        return False
    return bool(ssn.is_valid(digits))


def valid_ipv4(value: str) -> bool:
    try:
        addr = ipaddress.IPv4Address(value)
    except ValueError:
        return False
    return not (addr.is_unspecified or str(addr).startswith("255."))


def valid_ipv6(value: str) -> bool:
    if value.count(":") < 2 or len(value) < 6:
        return False
    try:
        addr = ipaddress.IPv6Address(value.split("%", 1)[0])
    except ValueError:
        return False
    return not (addr.is_unspecified or addr.is_loopback)


def valid_npi(value: str) -> bool:
    # An NPI is Luhn-valid once the card-issuer prefix 80840 is put in front of it.
    return bool(luhn.is_valid("80840" + _digits(value)))


def valid_eth(value: str) -> bool:
    body = value[2:]
    return len(set(body.lower())) > 6  # not 0x000...0 or a repeated filler


_EMAIL = (
    r"(?<![A-Za-z0-9_.+\-%])[A-Za-z0-9][A-Za-z0-9._%+\-]{0,63}@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.){1,8}[A-Za-z]{2,24}(?![A-Za-z0-9_\-])"
)
_URL = (
    r"(?<![A-Za-z0-9_@])(?:(?:https?|ftp)://|www\.)"
    r"[A-Za-z0-9\-._~%!$&'*+,;=:@/?#\[\]À-ɏ]{1,2048}(?<![.,;:!?'\]])"
)
# The first digit before the look-behind: the scan skips to digits.
_IPV4 = (
    r"[0-9](?<![A-Za-z0-9_.].)[0-9]{0,2}\.(?:[0-9]{1,3}\.){2}[0-9]{1,3}"
    r"(?![A-Za-z0-9_]|\.[0-9])"
)
_IPV6 = r"(?<![A-Za-z0-9_:.])(?:[0-9A-Fa-f]{1,4}:|:){2,7}(?:[0-9A-Fa-f]{1,4}|:)(?![A-Za-z0-9_:])"
# Every IPv6 match has a colon followed by a hex digit or a colon (its second group's
# start); this literal-led search is far cheaper than the pattern, which cannot skip ahead.
_IPV6_GATE = r":[0-9A-Fa-f:]"
# Every IBAN match starts with two letters and two digits; led by a digit, this search
# skips through the text where the IBAN pattern has to stop at every letter.
_IBAN_GATE = r"[0-9](?<=[A-Za-z]{2}[0-9])[0-9]"
# B after the first digit: the same matches, and the scan skips straight to digits.
B1 = r"(?<![A-Za-z0-9_@/.+\-#:].)"
_CARD = rf"[0-9]{B1}(?:[ \-]?[0-9]){{11,18}}{E}"
_IBAN = (  # the first letter before the look-behind: the scan skips to letters
    r"[A-Za-z](?<![A-Za-z0-9_].)[A-Za-z][0-9]{2}(?:[ ]?[A-Za-z0-9]{4}){2,7}"
    r"(?:[ ]?[A-Za-z0-9]{1,3})?(?![A-Za-z0-9_])"
)
_SSN = rf"{B}[0-9]{{3}}([\- ])[0-9]{{2}}\1[0-9]{{4}}{E}"
_SSN_BARE = rf"{B}[0-9]{{9}}{E}"
_NHS = rf"{B}[0-9]{{3}}([ \-]?)[0-9]{{3}}\1[0-9]{{4}}{E}"
_BTC = (  # one branch per first character, so the scan skips to b, 1 and 3
    r"(?:b(?<![A-Za-z0-9_].)c1[a-z0-9]{25,87}|1(?<![A-Za-z0-9_].)[a-km-zA-HJ-NP-Z1-9]{25,34}"
    r"|3(?<![A-Za-z0-9_].)[a-km-zA-HJ-NP-Z1-9]{25,34})(?![A-Za-z0-9_])"
)
_ETH = r"(?<![A-Za-z0-9_])0x[0-9a-fA-F]{40}(?![A-Za-z0-9_])"

PAYMENT_CONTEXT = (
    "card", "credit", "debit", "visa", "mastercard", "amex", "cc", "payment", "karte",
    "kreditkarte", "carte", "tarjeta", "crédito", "カード", "クレジット",
)
IBAN_CONTEXT = ("iban", "account", "bank", "konto", "compte", "cuenta", "口座", "transfer")
SSN_CONTEXT = ("ssn", "social security", "social-security", "ss#", "ss #")
PASSPORT_CONTEXT = (
    "passport", "passport number", "passport no", "travel document", "reisepass", "pass-nr",
    "passeport", "pasaporte", "passaporto", "paspoort", "旅券", "パスポート",
)
DRIVER_CONTEXT = (
    "driver", "driver's", "drivers", "driving", "licence", "license", "dl", "dln",
    "führerschein", "permis de conduire", "permiso de conducir", "carnet de conducir",
    "運転免許",
)
NHS_CONTEXT = ("nhs", "health service", "patient", "nhs number")
MEDICAL_CONTEXT = (
    "dea", "dea number", "npi", "medical license", "medical licence", "prescriber",
    "provider", "physician", "license number", "licence number",
)
CRYPTO_CONTEXT = ("bitcoin", "btc", "wallet", "eth", "ethereum", "crypto", "address", "send")


def structured_recognizers() -> list[PatternRecognizer]:
    """The built-in recognizers for entities with a fixed format."""
    return [
        PatternRecognizer(
            "email", "EMAIL_ADDRESS", _EMAIL, 0.9, gate="@", negative_context=False,
            explanation="e-mail address",
        ),
        PatternRecognizer(
            "url", "URL", _URL, 0.6, gate=r"://|www\.", negative_context=False,
            explanation="URL",
        ),
        PatternRecognizer(
            "ipv4", "IP_ADDRESS", _IPV4, 0.7, validator=valid_ipv4, min_digits=4,
            context=("ip", "address", "host", "server", "client", "from"),
            explanation="IPv4 address",
        ),
        PatternRecognizer(
            "ipv6", "IP_ADDRESS", _IPV6, 0.75, validator=valid_ipv6, gate=_IPV6_GATE,
            explanation="IPv6 address",
        ),
        PatternRecognizer(
            "credit_card", "CREDIT_CARD", _CARD, 0.7, validator=valid_card, min_digits=12,
            shrink=True,
            context=PAYMENT_CONTEXT, explanation="card number (Luhn and issuer prefix)",
        ),
        PatternRecognizer(
            "iban", "IBAN_CODE", _IBAN, 0.85, validator=valid_iban, gate=_IBAN_GATE,
            min_digits=6, context=IBAN_CONTEXT, negative_context=False, shrink=True,
            explanation="IBAN (ISO 13616 check digits)",
        ),
        PatternRecognizer(
            "us_ssn", "US_SSN", _SSN, 0.6, validator=valid_ssn, min_digits=9, min_run=4,
            context=SSN_CONTEXT, explanation="US social security number",
        ),
        PatternRecognizer(
            "us_ssn_bare", "US_SSN", _SSN_BARE, 0.3, validator=valid_ssn, min_run=9,
            runs=frozenset({9}),
            context=SSN_CONTEXT, context_required=True,
            explanation="nine digits after an SSN context word",
        ),
        PatternRecognizer(
            "us_passport", "US_PASSPORT", rf"{B}(?:[A-Z][0-9]{{8}}|[0-9]{{9}}){E}", 0.3,
            runs=frozenset({8, 9}),
            min_run=8, context=PASSPORT_CONTEXT, context_required=True,
            explanation="passport number after a passport context word",
        ),
        PatternRecognizer(
            "us_driver_license", "US_DRIVER_LICENSE",
            rf"{B}(?:[A-Z][0-9]{{3,14}}|[A-Z]{{2}}[0-9]{{5,12}}|[0-9]{{3,4}}-[0-9]{{2,3}}-[0-9]{{3,4}}"
            rf"|[0-9]{{6,13}}){E}",
            0.3, min_digits=6, min_run=2, context=DRIVER_CONTEXT, context_required=True,
            explanation="licence number after a driver's licence context word",
        ),
        PatternRecognizer(
            "uk_nhs", "UK_NHS", _NHS, 0.3, validator=nhs.is_valid, min_digits=10, min_run=3,
            context=NHS_CONTEXT, explanation="NHS number (modulus 11)",
        ),
        PatternRecognizer(
            "crypto_btc", "CRYPTO", _BTC, 0.75, validator=bitcoin.is_valid,
            context=CRYPTO_CONTEXT,
            explanation="Bitcoin address (Base58Check or Bech32)",
        ),
        PatternRecognizer(
            "crypto_eth", "CRYPTO", _ETH, 0.6, validator=valid_eth, gate="0x",
            context=CRYPTO_CONTEXT, explanation="Ethereum address",
        ),
        PatternRecognizer(
            "medical_dea", "MEDICAL_LICENSE", rf"{B}[ABCDEFGHJKLMPRSTUX][A-Z9][0-9]{{7}}{E}",
            0.3, min_run=7, runs=frozenset({7, 8}), context=MEDICAL_CONTEXT, context_required=True,
            explanation="DEA registration number after a licence context word",
        ),
        PatternRecognizer(
            "medical_npi", "MEDICAL_LICENSE", rf"{B}[12][0-9]{{9}}{E}", 0.3,
            runs=frozenset({10}),
            validator=valid_npi, min_run=10, context=MEDICAL_CONTEXT,
            context_required=True, explanation="National Provider Identifier (Luhn)",
        ),
    ]


__all__ = ["structured_recognizers", "valid_card", "valid_ipv4", "valid_ipv6"]
