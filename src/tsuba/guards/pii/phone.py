"""Phone numbers: a loose candidate pattern, then Google's libphonenumber decides.

Numbers written with a country code are checked on their own; national formats are tried
against the regions of the text's language, and against many more regions only when a phone
context word is near (a bare "0490 39 07 81" is valid somewhere in the world far too often).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import phonenumbers

from tsuba.guards.pii.recognizer import TextContext, words_pattern
from tsuba.guards.types import Finding

# Its first character (plus, bracket or digit) comes before the look-behind so the scan
# skips to those; the look-behinds after it pick up the optional "+", "00" and "(" in the
# order the plain ``(?<!...)(?:\+|00)?\(?[0-9]`` tries them.
_CANDIDATE = re.compile(
    r"[+(0-9](?<![A-Za-z0-9_+.\-/:@#].)(?:(?<=\+)\(?[0-9]|(?<=0)0\(?[0-9]|(?<=\()[0-9]|(?<=[0-9]))"
    r"(?:[ \t().\-/]{0,3}[0-9]){6,16}"
    r"(?:[ \t]{0,2}(?:x|ext\.?|extension|#)[ \t]{0,2}[0-9]{1,5})?(?![A-Za-z0-9_\-/]|\.[0-9]|:[0-9])"
)
_DATE_LIKE = re.compile(
    r"^(?:[0-9]{4}[\-/.][0-9]{1,2}[\-/.][0-9]{1,2}|[0-9]{1,2}[\-/.][0-9]{1,2}[\-/.][0-9]{2,4})"
)
_DOTTED_QUAD = re.compile(r"^[0-9]{1,3}(?:\.[0-9]{1,3}){2,}$")
# Dates, dotted quads (IPs, versions) and the SSN shape are other entities, never phones.
_NOT_PHONE = re.compile(
    _DATE_LIKE.pattern + r"|^[0-9]{1,3}(?:\.[0-9]{1,3}){2,}$|^[0-9]{3}-[0-9]{2}-[0-9]{4}$"
)

LANGUAGE_REGIONS: dict[str, tuple[str, ...]] = {
    "en": ("US", "GB", "CA", "AU", "IE", "NZ"),
    "de": ("DE", "AT", "CH"),
    "fr": ("FR", "BE", "CH", "CA"),
    "es": ("ES", "MX", "AR", "CO"),
    "ja": ("JP",),
    "it": ("IT", "CH"),
    "nl": ("NL", "BE"),
    "pt": ("PT", "BR"),
}
# Tried only with a phone context word nearby.
WIDE_REGIONS = (
    "US", "GB", "DE", "FR", "ES", "IT", "NL", "BE", "AT", "CH", "JP", "IE", "PT", "SE", "NO",
    "DK", "FI", "PL", "CZ", "SK", "HU", "RO", "BG", "GR", "HR", "SI", "EE", "LV", "LT", "LU",
    "IS", "AU", "NZ", "CA", "MX", "BR", "AR", "IN", "ZA", "UY", "CY", "MT",
)
PHONE_CONTEXT = (
    "phone", "telephone", "tel", "tel.", "mobile", "cell", "call", "fax", "contact",
    "whatsapp", "sms", "text me", "reach me", "telefon", "handy", "rufnummer", "téléphone",
    "portable", "appeler", "teléfono", "móvil", "llamar", "telefono",
    "cellulare", "telefoonnummer", "電話", "携帯", "連絡先",
)
_CONTEXT = words_pattern(PHONE_CONTEXT)
# libphonenumber's metadata holds more patterns than the re module's cache keeps (512), so
# without its own cache every validation past the first few regions recompiles some.
phonenumbers.enable_pattern_cache()


class PhoneRecognizer:
    name = "phone"
    entities = ("PHONE_NUMBER",)
    languages: frozenset[str] | None = None
    min_digits = 7  # the analyzer skips texts with fewer digits

    def analyze(self, text: str, ctx: TextContext) -> Iterable[Finding]:
        if ctx.digits()[0] < 7:
            return
        for match in _CANDIDATE.finditer(text):
            raw = match.group()
            digits = sum(c.isdigit() for c in raw)
            if not 7 <= digits <= 15 or _NOT_PHONE.match(raw):
                continue
            start, end = match.span()
            finding = self._check(ctx, raw, start, end)
            if finding is not None:
                yield finding

    def _check(  # noqa: PLR0911 - one return per verdict reads best
        self, ctx: TextContext, raw: str, start: int, end: int
    ) -> Finding | None:
        has_context = _CONTEXT is not None and _CONTEXT.search(ctx.window(start, end)) is not None
        international = raw.startswith(("+", "00"))
        if international:
            verdict = _check_number(raw if raw.startswith("+") else "+" + raw[2:], None)
            if verdict == _VALID:
                return _finding(start, end, 0.75, has_context, "international number")
            if verdict == _POSSIBLE:
                return _finding(start, end, 0.55, has_context, "possible international number")
            return None
        plain = raw.replace(" ", "").replace("-", "")
        if plain.isdigit() and " " not in raw and "-" not in raw and not has_context:
            return None  # an unformatted run of digits is an id far more often than a phone
        possible = ""
        seen: dict[str, int] = {}  # the wide pass repeats the language's regions
        numbers: dict[_Key, int] = {}  # regions that parse it alike (US, CA) share a verdict
        for region in LANGUAGE_REGIONS.get(ctx.language, LANGUAGE_REGIONS["en"]):
            verdict = seen[region] = _check_number(raw, region, numbers)
            if verdict == _VALID:
                return _finding(start, end, 0.55, has_context, f"valid number in {region}")
            if verdict == _POSSIBLE and not possible:
                possible = region
        if has_context:
            for region in WIDE_REGIONS:
                verdict = seen[region] if region in seen else _check_number(raw, region, numbers)
                if verdict == _VALID:
                    return _finding(start, end, 0.3, True, f"valid number in {region}")
        if possible and _FORMATTED.match(raw):
            return _finding(start, end, 0.35, has_context, f"possible number in {possible}")
        return None


def _finding(start: int, end: int, score: float, context: bool, why: str) -> Finding:
    if context:
        score += 0.3
        why += "; context word nearby"
    return Finding(start, end, "PHONE_NUMBER", min(score, 1.0), "phone", why)


_VALID, _POSSIBLE, _INVALID = 2, 1, 0
# Grouped the way people write phone numbers: (555) 123-4567, 555-123-4567, 0171 234 5678.
_FORMATTED = re.compile(
    r"^(?:\([0-9]{2,5}\)[ \-]?|[0-9]{2,5}[ \-.])[0-9]{2,4}(?:[ \-.][0-9]{2,5}){1,3}"
)


# What validity and possibility read of a parsed number: the same key, the same verdict.
_Key = tuple[int | None, int | None, str | None, bool | None, int | None]


def _check_number(raw: str, region: str | None, seen: dict[_Key, int] | None = None) -> int:
    """_VALID, _POSSIBLE or _INVALID for ``raw`` read in ``region``.

    Possibility (a length check) comes first: every valid number has a possible length (the
    metadata's general lengths hold those of every number type), so a number that is not
    possible skips the slower type-by-type validity match with the same verdict.  ``seen``
    keeps the verdicts of numbers already parsed for one candidate: regions that share a
    country code and national prefix (US and CA) parse it into the same number.
    """
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return _INVALID
    key: _Key = (
        number.country_code,
        number.national_number,
        number.extension,
        number.italian_leading_zero,
        number.number_of_leading_zeros,
    )
    if seen is not None and key in seen:
        return seen[key]
    if not phonenumbers.is_possible_number(number):
        verdict = _INVALID
    elif phonenumbers.is_valid_number(number):
        verdict = _VALID
    else:
        verdict = _POSSIBLE
    if seen is not None:
        seen[key] = verdict
    return verdict
