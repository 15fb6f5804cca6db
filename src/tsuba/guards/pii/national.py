"""National identifiers of the EU member states and Japan, validated by python-stdnum.

The score of each reflects how much its format and check digits say on their own: a Finnish
HETU or an Italian codice fiscale is unmistakable, while nine digits passing the Dutch
eleven-test happen to one random number in eleven; those weak ones are reported only with a
context word in the country's language.  Cyprus, Hungary, Luxembourg and Malta have no
personal-number validator in python-stdnum; their tax numbers are covered by ``EU_VAT``.
"""

# ruff: noqa: E501  (one table row per identifier reads best on one line)
from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from tsuba.guards.pii.patterns import B, E
from tsuba.guards.pii.recognizer import PatternRecognizer


@dataclass(frozen=True)
class NationalId:
    entity: str
    module: str  # python-stdnum module whose is_valid decides
    pattern: str
    score: float  # without context; below 0.5 means "only with a context word"
    context: tuple[str, ...]
    gate: str | None = None
    min_digits: int = 8  # digits a valid value holds at least
    min_run: int = 2  # longest unbroken digit run a valid value has at least
    runs: tuple[int, ...] = ()  # a match holds a maximal digit run of one of these lengths


def _d(n: int) -> str:
    return rf"[0-9]{{{n}}}"


NATIONAL_IDS: tuple[NationalId, ...] = (
    NationalId("AT_SOCIAL_SECURITY", "at.vnr", rf"{B}{_d(4)} ?{_d(6)}{E}", 0.3,
               ("sozialversicherungsnummer", "svnr", "sv-nummer", "versicherungsnummer", "vsnr"), min_digits=10, min_run=4, runs=(4, 10)),
    NationalId("BE_NATIONAL_NUMBER", "be.nn",
               rf"{B}{_d(2)}\.?{_d(2)}\.?{_d(2)}[\- ]?{_d(3)}\.?{_d(2)}{E}", 0.4,
               ("rijksregisternummer", "numéro national", "national number", "insz", "niss",
                "registre national"), min_digits=11, min_run=2),
    NationalId("BG_EGN", "bg.egn", rf"{B}{_d(10)}{E}", 0.3, ("егн", "egn"), min_digits=10, min_run=10, runs=(10,)),
    NationalId("HR_OIB", "hr.oib", rf"{B}{_d(11)}{E}", 0.3, ("oib", "osobni identifikacijski"), min_digits=11, min_run=11, runs=(11,)),
    NationalId("CZ_BIRTH_NUMBER", "cz.rc", rf"{B}{_d(6)}/[0-9]{{3,4}}{E}",
               0.45, ("rodné číslo", "rodne cislo", "rč", "birth number"), min_digits=9, min_run=3, runs=(6,)),
    NationalId("SK_BIRTH_NUMBER", "sk.rc", rf"{B}{_d(6)}/[0-9]{{3,4}}{E}", 0.4,
               ("rodné číslo", "rodne cislo"), min_digits=9, min_run=3, runs=(6,)),
    NationalId("DK_CPR", "dk.cpr", rf"{B}{_d(6)}-?{_d(4)}{E}", 0.3,
               ("cpr", "cpr-nummer", "personnummer", "cpr nr"), min_digits=10, min_run=4, runs=(6, 10)),
    NationalId("EE_PERSONAL_CODE", "ee.ik", rf"{B}[1-6]{_d(10)}{E}", 0.3,
               ("isikukood", "personal code", "isikukoodi"), min_digits=11, min_run=11, runs=(11,)),
    NationalId("FI_HETU", "fi.hetu", rf"{B}{_d(6)}[\-+A-FU-Y]{_d(3)}[0-9A-Y]{E}", 0.8,
               ("henkilötunnus", "hetu", "personbeteckning"), min_digits=9, min_run=3, runs=(6,)),
    NationalId("FR_NIR", "fr.nir",
               rf"{B}[12] ?{_d(2)} ?(?:0[1-9]|1[0-2]|[2-9][0-9]) ?(?:[0-9]{{2}}|2[AB]) ?{_d(3)} ?"
               rf"{_d(3)} ?{_d(2)}{E}",
               0.6, ("sécurité sociale", "securite sociale", "numéro de sécu", "nir", "insee",
                     "carte vitale"), min_digits=13, min_run=1),
    NationalId("FR_NIF", "fr.nif", rf"{B}[0-3][0-9] ?{_d(2)} ?{_d(3)} ?{_d(3)} ?{_d(3)}{E}", 0.3,
               ("numéro fiscal", "nif", "spi", "identifiant fiscal"), min_digits=13, min_run=2, runs=(2, 4, 7, 10, 13)),
    NationalId("DE_TAX_ID", "de.idnr", rf"{B}[1-9][0-9] ?{_d(3)} ?{_d(3)} ?{_d(3)}{E}", 0.35,
               ("steuer-id", "steuerid", "steueridentifikationsnummer", "idnr",
                "identifikationsnummer", "tax id", "steuernummer"), min_digits=11, min_run=2, runs=(2, 5, 8, 11)),
    NationalId("GR_AMKA", "gr.amka", rf"{B}{_d(11)}{E}", 0.3, ("amka", "αμκα"), min_digits=11, min_run=11, runs=(11,)),
    NationalId("IE_PPS", "ie.pps", rf"{B}{_d(7)}[A-W][ABWTX]?{E}", 0.55,
               ("pps", "ppsn", "personal public service"), min_digits=7, min_run=7, runs=(7,)),
    NationalId("IT_FISCAL_CODE", "it.codicefiscale",
               rf"{B}[A-Z]{{6}}[0-9LMNPQRSTUV]{{2}}[A-EHLMPR-T][0-9LMNPQRSTUV]{{2}}[A-Z]"
               rf"[0-9LMNPQRSTUV]{{3}}[A-Z]{E}",
               0.85, ("codice fiscale", "cf", "fiscal code"), gate=r"[A-Z]{6}[0-9LMNPQRSTUV]", min_digits=7, min_run=1),
    NationalId("LT_PERSONAL_CODE", "lt.asmens", rf"{B}[1-6]{_d(10)}{E}", 0.3,
               ("asmens kodas", "personal code"), min_digits=11, min_run=11, runs=(11,)),
    NationalId("LV_PERSONAL_CODE", "lv.pvn", rf"{B}{_d(6)}-{_d(5)}{E}", 0.4,
               ("personas kods", "personal code"), min_digits=11, min_run=5, runs=(6,)),
    NationalId("NL_BSN", "nl.bsn", rf"{B}{_d(4)}\.?{_d(2)}\.?{_d(3)}{E}|{B}{_d(9)}{E}", 0.3,
               ("bsn", "burgerservicenummer", "sofinummer", "sofi"), min_digits=9, min_run=2, runs=(4, 6, 9)),
    NationalId("PL_PESEL", "pl.pesel", rf"{B}{_d(11)}{E}", 0.3, ("pesel",), min_digits=11, min_run=11, runs=(11,)),
    NationalId("PT_CITIZEN_CARD", "pt.cc", rf"{B}{_d(8)} ?[0-9] ?[A-Z]{{2}}[0-9]{E}", 0.75,
               ("cartão de cidadão", "cartao de cidadao", "cc"), min_digits=10, min_run=8, runs=(8, 9)),
    NationalId("PT_NIF", "pt.nif", rf"{B}[1-35689]{_d(8)}{E}", 0.3,
               ("nif", "contribuinte", "número fiscal"), min_digits=9, min_run=9, runs=(9,)),
    NationalId("RO_CNP", "ro.cnp", rf"{B}[1-9]{_d(12)}{E}", 0.4, ("cnp", "cod numeric personal"), min_digits=13, min_run=13, runs=(13,)),
    NationalId("SI_EMSO", "si.emso", rf"{B}[0-3][0-9]{_d(11)}{E}", 0.4, ("emšo", "emso"), min_digits=13, min_run=13, runs=(13,)),
    NationalId("ES_DNI", "es.dni", rf"{B}{_d(8)}-?[A-Z]{E}", 0.6,
               ("dni", "nif", "documento nacional", "documento de identidad"), min_digits=8, min_run=8, runs=(8,)),
    NationalId("ES_NIE", "es.nie", rf"{B}[XYZ]-?{_d(7)}-?[A-Z]{E}", 0.75,
               ("nie", "extranjero"), min_digits=7, min_run=7, runs=(7,)),
    NationalId("SE_PERSONNUMMER", "se.personnummer", rf"{B}(?:19|20)?{_d(6)}[\-+]{_d(4)}{E}",
               0.45, ("personnummer", "personnr"), min_digits=10, min_run=4, runs=(6, 8)),
    NationalId("JP_MY_NUMBER", "jp.in_", rf"{B}{_d(4)}[ \-]?{_d(4)}[ \-]?{_d(4)}{E}", 0.3,
               ("マイナンバー", "個人番号", "my number", "individual number"), min_digits=12, min_run=4, runs=(4, 8, 12)),
    NationalId("JP_CORPORATE_NUMBER", "jp.cn", rf"{B}[1-9]{_d(12)}{E}", 0.3,
               ("法人番号", "corporate number"), min_digits=13, min_run=13, runs=(13,)),
    NationalId("EU_VAT", "eu.vat",
               rf"{B}(?:AT|BE|BG|CY|CZ|DE|DK|EE|EL|ES|FI|FR|HR|HU|IE|IT|LT|LU|LV|MT|NL|PL|PT|RO"
               rf"|SE|SI|SK) ?[0-9A-Z]{{8,12}}{E}",
               0.6, ("vat", "ust-idnr", "umsatzsteuer", "tva", "iva", "btw", "mwst"), min_digits=7, min_run=2),
)


def _validator(module: str) -> Callable[[str], bool]:
    mod = importlib.import_module(f"stdnum.{module}")
    is_valid: Callable[[str], bool] = mod.is_valid
    return is_valid


def national_recognizers() -> list[PatternRecognizer]:
    return [
        PatternRecognizer(
            name=spec.entity.lower(),
            entity=spec.entity,
            pattern=spec.pattern,
            score=spec.score,
            validator=_validator(spec.module),
            context=spec.context,
            gate=spec.gate,
            min_digits=spec.min_digits,
            min_run=spec.min_run,
            runs=frozenset(spec.runs) if spec.runs else None,
            explanation=f"valid per python-stdnum {spec.module}",
        )
        for spec in NATIONAL_IDS
    ]
