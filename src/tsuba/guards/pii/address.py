"""Street addresses in English, German, French, Spanish, Italian, Dutch, Nordic and Japanese.

Each language writes the street type and the house number in its own order ("12 Baker
Street", "Hauptstraße 5", "12 rue de la Paix", "Calle Mayor 3", "東京都港区六本木1-2-3"), so
there is one pattern per family; a match then absorbs what follows it on the same address
(unit, postcode, city, region) so the whole address is one finding.
"""

# ruff: noqa: RUF001, E501  (patterns in many scripts)
from __future__ import annotations

import re
from collections.abc import Iterable

from tsuba.guards.pii.recognizer import TextContext, words_pattern
from tsuba.guards.types import Finding

_CAP = r"[A-ZÀ-ÖØ-ÞĀ-Ž]"
_W = r"[\wÀ-ÿĀ-ž'’.\-]"
_NAME = rf"{_CAP}{_W}{{0,30}}"

EN_STREET_TYPES = (
    "street", "st", "avenue", "ave", "av", "road", "rd", "boulevard", "blvd", "lane", "ln",
    "drive", "dr", "court", "ct", "way", "place", "pl", "terrace", "ter", "parkway", "pkwy",
    "highway", "hwy", "square", "sq", "circle", "cir", "crescent", "close", "grove", "gardens",
    "row", "mews", "walk", "hill", "trail", "trl", "loop", "alley", "path", "pike", "plaza",
    "point", "ridge", "run", "view", "crossing", "port", "park", "green", "heights", "estate",
)
_EN_TYPES = "|".join(sorted((re.escape(t) for t in EN_STREET_TYPES), key=len, reverse=True))
_UNIT = r"(?:,?[ \t]*(?:\n[ \t]*)?(?:apt\.?|apartment|suite|ste\.?|unit|flat|floor|fl\.?|room|#)[ \t]*[0-9]{1,5}[A-Za-z]?)"
_EN = (
    rf"[0-9](?<![\w\-].)[0-9]{{0,5}}[A-Za-z]?[ \t]+(?:{_NAME}[ \t]+){{1,4}}(?i:{_EN_TYPES})\.?(?![\w])"
    rf"{_UNIT}?"
)
_DE_SUFFIX = (
    r"(?:straße|strasse|str\.|weg|gasse|platz|allee|ring|damm|ufer|chaussee|steig|pfad|"
    r"markt|graben|berg|hof|tor|kamp|straat|laan|gracht|plein|dijk|kade|singel|steeg|"
    r"tie|katu|kuja|polku|gatan|vägen|gränd|vej|gade|veien|gata|ulica|utca|cesta)"
)
# Its first character (a digit or a capital) before the look-behind, so the scan skips to
# those; the look-behind after it says which of the two the match started with.
_SUFFIX_STREET = (
    rf"[0-9A-ZÀ-ÖØ-ÞĀ-Ž](?<![\w].)(?:(?<=[0-9])[0-9]{{0,5}}[ \t]+{_CAP}|(?<={_CAP}))"
    rf"[\wÀ-ÿĀ-ž\-]{{0,30}}{_DE_SUFFIX}"
    rf"(?:[ \t]+[0-9]{{1,4}}(?:[ \t]?[a-zA-Z](?![\w]))?(?:[\-/][0-9]{{1,4}})?){_UNIT}?"
)
_DE_SEPARATE = (
    rf"(?<![\w])(?:Am|An der|Auf der|Im|In der|Zum|Zur|Unter den)[ \t]+{_NAME}"
    rf"(?:[ \t]+{_NAME})?[ \t]+[0-9]{{1,4}}[a-z]?(?![\w])"
)
_FR = (
    r"[0-9](?<![\w].)[0-9]{0,3}(?:[ \t]?(?:bis|ter))?,?[ \t]+(?i:rue|avenue|av\.|boulevard|bd|place|"
    r"chemin|allée|impasse|quai|route|cours|square|passage|voie|faubourg|rond-point)[ \t]+"
    rf"(?:(?:de la|de l'|du|des|de|d'|la|le|les|l')[ \t]?)?{_NAME}(?:[ \t]+(?:{_NAME}|de|du|des|la|le)){{0,4}}"
)
_ES_IT = (
    r"(?<![\w])(?:Calle|C/|Avenida|Avda\.?|Paseo|Plaza|Pza\.|Camino|Carretera|Ctra\.|Ronda|"
    r"Travesía|Callejón|Rúa|Via|Viale|Piazza|Piazzale|Corso|Largo|Vicolo|Strada|Rua|Avenue)"
    rf"[ \t]+(?:(?:de la|de los|de las|del|de|dei|della|delle|degli|di)[ \t]+)?{_NAME}"
    rf"(?:[ \t]+(?:{_NAME}|de|del|la|di|della)){{0,4}},?[ \t]*(?:n[º°o]\.?[ \t]*)?[0-9]{{1,4}}[A-Za-z]?(?![\w])"
)
_PO_BOX = (
    r"(?<![\w])(?:P\.?[ \t]?O\.?[ \t]?Box|PSC|Unit|Postfach|BP|Apartado(?: de correos)?|"
    r"Casella postale)[ \t]+[0-9]{1,6}(?:,[ \t]*Box[ \t]+[0-9]{1,6})?"
)
_UNIT_ONLY = r"(?<![\w])(?:Apt\.|Apartment|Suite)[ \t]*[0-9]{1,5}[A-Za-z]?(?![\w])"
_JP = (
    r"(?:〒[ \t]?[0-9]{3}-[0-9]{4}[ \t　]*)?"
    r"(?:北海道|東京都|京都府|大阪府|[\u4e00-\u9fff]{2,3}県)"
    r"[\u4e00-\u9fff\u3040-\u30ff]{1,16}?(?:[0-9０-９]{1,4}|[一二三四五六七八九十]{1,3})"
    r"(?:(?:丁目|番地?|号|[\-ー－])(?:[0-9０-９]{1,4})?){0,4}"
)
_JP_POSTAL = r"〒[ \t]?[0-9]{3}-[0-9]{4}"
# Literals the patterns above cannot match without (checked with ``in`` before they run).
_DE_WORDS = ("Am", "An der", "Auf der", "Im", "In der", "Zum", "Zur", "Unter den")
_ES_IT_WORDS = (
    "Calle", "C/", "Avenida", "Avda", "Paseo", "Plaza", "Pza.", "Camino", "Carretera", "Ctra.",
    "Ronda", "Travesía", "Callejón", "Rúa", "Via", "Piazza", "Corso", "Largo", "Vicolo",
    "Strada", "Rua", "Avenue",
)
_PO_WORDS = ("Box", "PSC", "Unit", "Postfach", "BP", "Apartado", "Casella postale")
_UNIT_WORDS = ("Apt.", "Apartment", "Suite")
_JP_WORDS = ("北海道", "東京都", "京都府", "大阪府", "県")
# What may follow a street on the same address: ", City, ST 12345", "\n10115 Berlin", ...
_TAIL = re.compile(
    r"(?:,?[ \t]*\n?[ \t]*(?:,[ \t]*)?"
    r"(?:[0-9]{4,5}[ \t]+[A-ZÀ-Þ][\wÀ-ÿ\-]{1,30}(?:[ \t][A-ZÀ-Þ][\wÀ-ÿ\-]{1,30})?"  # 10115 Berlin
    r"|[A-Z][\wÀ-ÿ'\-]{1,30}(?:[ \t][A-Z][\wÀ-ÿ'\-]{1,30}){0,2}"  # City
    r"(?:,?[ \t]+[A-Z]{2})?(?:[ \t]+[0-9]{5}(?:-[0-9]{4})?)?"  # , ST 12345
    r"|[A-Z]{1,2}[0-9][A-Z0-9]?[ \t]?[0-9][A-Z]{2}"  # UK postcode
    r")){1,3}"
)
_ZIP_TAIL = re.compile(r"[0-9]{5}(?:-[0-9]{4})?(?![\w])|[A-Z]{1,2}[0-9][A-Z0-9]?[ \t]?[0-9][A-Z]{2}(?![\w])")
# Address lines after the street: ", Suite 5", "\n Ettelgem", ", CO", "\n Uruguay 64677".
_NEXT_PART = re.compile(
    r"[ \t]*(?:,[ \t]*\n?|\n)[ \t]*(?:,[ \t]*)?"
    r"(?:(?:Apt\.?|Apartment|Suite|Ste\.?|Unit|Flat|Box)[ \t]*[0-9]{1,6}[A-Za-z]?"
    r"|[0-9]{3,5}(?:[ \-][0-9]{2,4})?(?:[ \t]+[A-ZÀ-Þ][\wÀ-ÿ\-]{1,30}){0,2}"
    r"|[A-ZÀ-Þ][\wÀ-ÿ'\-.]{0,30}(?:[ \t][A-ZÀ-Þ][\wÀ-ÿ'\-.]{0,30}){0,3}"
    r"(?:[ \t]+[0-9]{3,5}(?:[ \-][0-9]{2,4})?)?)(?![\w])"
)
MAX_PARTS = 4


def literal_search(words: tuple[str, ...]) -> re.Pattern[str] | None:
    """A pattern found wherever one of ``words`` occurs as it is; None for no words."""
    if not words:
        return None
    return re.compile("|".join(re.escape(w) for w in sorted(words, key=len, reverse=True)))


def _lines_after(text: str, end: int) -> int:
    """Extend an address over the unit, town, region and country lines that follow it."""
    for _ in range(MAX_PARTS):
        m = _NEXT_PART.match(text, end)
        if m is None:
            break
        end = m.end()
    return end


ADDRESS_CONTEXT = words_pattern(
    (
        "address", "live at", "lives at", "located at", "ship to", "deliver to", "mail to",
        "street", "adresse", "anschrift", "wohne", "wohnhaft", "domicile", "dirección",
        "domicilio", "indirizzo", "adres", "住所", "所在地",
    )
)


class AddressRecognizer:
    name = "address"
    entities = ("ADDRESS",)
    languages: frozenset[str] | None = None
    min_digits = 1  # every address pattern holds a house number or a postcode

    def __init__(self) -> None:
        # (pattern, score, explanation, absorbs the lines after it, literals one of which
        # every match holds: a text with none of them skips the pattern)
        self._patterns: list[tuple[re.Pattern[str], float, str, bool, tuple[str, ...]]] = [
            (re.compile(_EN), 0.7, "house number and street type", True, ()),
            (re.compile(_SUFFIX_STREET), 0.6, "street name ending in a street word", True, ()),
            (re.compile(_DE_SEPARATE), 0.6, "German street with house number", True, _DE_WORDS),
            (re.compile(_FR), 0.7, "French street with house number", True, ()),
            (re.compile(_ES_IT), 0.7, "Spanish/Italian street with house number", True, _ES_IT_WORDS),
            (re.compile(_PO_BOX), 0.5, "post office box", True, _PO_WORDS),
            (re.compile(_UNIT_ONLY), 0.55, "apartment or suite number", False, _UNIT_WORDS),
            (re.compile(_JP), 0.75, "Japanese address", False, _JP_WORDS),
            (re.compile(_JP_POSTAL), 0.7, "Japanese postal code", False, ("〒",)),
        ]
        # The literals of each pattern as one search: most start with a capital letter, so
        # the scan skips to capitals instead of looking for each literal in turn.
        self._needs = [literal_search(needs) for *_, needs in self._patterns]

    def analyze(self, text: str, ctx: TextContext) -> Iterable[Finding]:
        if ctx.digits()[0] == 0:
            return  # every address pattern holds a house number or a postcode
        for (pattern, score, why, tail, _), needs in zip(self._patterns, self._needs, strict=True):
            if needs is not None and needs.search(text) is None:
                continue
            for m in pattern.finditer(text):
                start, end = m.span()
                if tail:
                    t = _TAIL.match(text, end)
                    if t is not None and _ZIP_TAIL.search(t.group()):
                        end = t.end()
                    else:
                        end = _lines_after(text, end)
                final = score
                reason = why
                if ADDRESS_CONTEXT is not None and ADDRESS_CONTEXT.search(ctx.window(start, end)):
                    final += 0.25
                    reason += "; context word nearby"
                if final >= 0.5 or ctx.language == "ja":
                    yield Finding(start, end, "ADDRESS", min(final, 1.0), self.name, reason)
