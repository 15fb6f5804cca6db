"""Every dataset the injection classifier is trained or evaluated on, pinned and licensed.

Public repositories are read at a pinned commit from local git mirrors (``--mirror DIR``
holding ``owner+name/repo`` git directories); nothing is downloaded here.  ``use`` says
whether a source may shape the shipped weights ("train") or only measure them ("eval").
"""

from __future__ import annotations

import ast
import csv
import io
import json
import random
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from injection_data import synthetic

Row = dict[str, object]


@dataclass(frozen=True)
class Source:
    name: str
    origin: str
    commit: str
    licence: str
    use: str  # "train" (may shape shipped weights) or "eval" (measure only)
    note: str
    load: Callable[[Path, Path], list[Row]]


class MissingMirror(SystemExit):
    """A pinned repository or commit is not in the mirror directory."""


def _git_dir(mirror: Path, repo: str, commit: str) -> Path:
    git_dir = mirror / repo.replace("/", "+") / "repo"
    probe = subprocess.run(
        ["git", "--git-dir", str(git_dir), "cat-file", "-e", f"{commit}^{{commit}}"],
        capture_output=True, check=False,
    )
    if probe.returncode != 0:
        raise MissingMirror(
            f"training data missing: {repo} at commit {commit} is not mirrored in {git_dir}; "
            f"mirror it (fetch target github:{repo}) and run again"
        )
    return git_dir


def _git_show(mirror: Path, repo: str, commit: str, path: str) -> str:
    git_dir = _git_dir(mirror, repo, commit)
    out = subprocess.run(
        ["git", "--git-dir", str(git_dir), "show", f"{commit}:{path}"],
        check=True, capture_output=True,
    )
    return out.stdout.decode("utf-8")


def _git_files(mirror: Path, repo: str, commit: str, prefix: str, suffix: str) -> dict[str, str]:
    """Every file under ``prefix`` ending in ``suffix`` at ``commit``, read in one batch."""
    git_dir = _git_dir(mirror, repo, commit)
    listing = subprocess.run(
        ["git", "--git-dir", str(git_dir), "ls-tree", "-r", "--name-only", commit,
         *(["--", prefix] if prefix else [])],
        check=True, capture_output=True, text=True,
    ).stdout.split("\n")
    paths = sorted(p for p in listing if p.endswith(suffix))
    batch = subprocess.run(
        ["git", "--git-dir", str(git_dir), "cat-file", "--batch"],
        input="".join(f"{commit}:{p}\n" for p in paths).encode(), check=True,
        capture_output=True,
    ).stdout
    files: dict[str, str] = {}
    at = 0
    for path in paths:
        header_end = batch.index(b"\n", at)
        size = int(batch[at:header_end].split()[2])
        files[path] = batch[header_end + 1 : header_end + 1 + size].decode("utf-8", "replace")
        at = header_end + 1 + size + 1
    return files


def _row(text: str, label: int, source: str, category: str, channel: str = "user") -> Row:
    return {"text": text, "label": label, "source": source, "category": category,
            "channel": channel}


def _dev(source: str) -> Callable[[Path, Path], list[Row]]:
    def load(dev: Path, mirror: Path) -> list[Row]:
        rows = []
        for line in dev.read_text(encoding="utf-8").splitlines():
            rec = json.loads(line)
            if rec["source"].startswith(source):
                rows.append(_row(rec["text"], int(rec["label"]), source, rec["category"]))
        return rows
    return load


GPTFUZZ = ("sherdencooper/GPTFuzz", "1eddeb565740ae311b5f4950492b011a6f866fe7")


def _gptfuzz(dev: Path, mirror: Path) -> list[Row]:
    repo, commit = GPTFUZZ
    templates = list(csv.DictReader(io.StringIO(
        _git_show(mirror, repo, commit, "datasets/prompts/GPTFuzzer.csv"))))
    questions = [r["text"] for r in csv.DictReader(io.StringIO(
        _git_show(mirror, repo, commit, "datasets/questions/question_list.csv")))]
    rng = random.Random(7)
    rows = []
    for tpl in templates:
        for question in rng.sample(questions, 4):
            rows.append(_row(tpl["text"].replace("[INSERT PROMPT HERE]", question), 1,
                             "gptfuzz", "roleplay jailbreak template"))
    return rows


BIPIA = ("microsoft/BIPIA", "1a2a91da6bb12838e05d1b2e54d98e2f37b835f3")
# BIPIA attack categories that address the responder ("in your answer", "in your code");
# the plain-question categories are ordinary requests once cut out of their context.
_BIPIA_TASK_LIKE = {"Information Retrieval", "Content Creation", "Learning and Tutoring",
                    "Language Translation", "Programming Help"}


def _bipia(dev: Path, mirror: Path) -> list[Row]:
    repo, commit = BIPIA
    rng = random.Random(11)
    contexts: list[str] = []
    for task in ("email", "table", "code"):
        for split in ("train", "test"):
            path = f"benchmark/{task}/{split}.jsonl"
            for line in _git_show(mirror, repo, commit, path).splitlines():
                rec = json.loads(line)
                ctx = rec["context"]
                if isinstance(ctx, list):
                    ctx = "\n".join(ctx)
                if task == "code":
                    parts = [*rec.get("error", []), *rec.get("code", []), ctx]
                    ctx = "\n".join(parts)
                ctx = ctx.strip()[:2500]
                if len(ctx) > 40:
                    contexts.append(ctx)
    attacks: list[str] = []
    for name in ("text_attack_train.json", "text_attack_test.json",
                 "code_attack_train.json", "code_attack_test.json"):
        data = json.loads(_git_show(mirror, repo, commit, f"benchmark/{name}"))
        for category, texts in data.items():
            if category not in _BIPIA_TASK_LIKE:
                attacks.extend(texts)
    rng.shuffle(contexts)
    rows = [_row(ctx, 0, "bipia", "document", "document") for ctx in contexts[:600]]
    for ctx in contexts[600:1200]:
        attack = rng.choice(attacks)
        lines = ctx.split("\n")
        at = rng.randint(0, len(lines))
        text = "\n".join([*lines[:at], attack, *lines[at:]])
        rows.append(_row(text, 1, "bipia", "indirect injection", "document"))
    return rows


SELF_INSTRUCT = ("yizhongw/self-instruct", "0b26ccaa415992100fa32df62d41b994cf928e23")


def _self_instruct(dev: Path, mirror: Path) -> list[Row]:
    repo, commit = SELF_INSTRUCT
    rows = []
    for path in ("data/seed_tasks.jsonl", "human_eval/user_oriented_instructions.jsonl"):
        for line in _git_show(mirror, repo, commit, path).splitlines():
            rec = json.loads(line)
            inp = rec["instances"][0]["input"] if rec["instances"] else ""
            text = f"{rec['instruction']}\n{inp}".strip()
            rows.append(_row(text, 0, "self-instruct", "instruction"))
    return rows


GSM8K = ("openai/grade-school-math", "3101c7d5072418e28b9008a6636bde82a006892c")


def _gsm8k(dev: Path, mirror: Path) -> list[Row]:
    repo, commit = GSM8K
    lines = _git_show(mirror, repo, commit, "grade_school_math/data/test.jsonl").splitlines()
    rng = random.Random(13)
    picked = rng.sample(lines, 600)
    return [_row(json.loads(x)["question"], 0, "gsm8k", "math word problem") for x in picked]


TLDR = ("tldr-pages/tldr", "08e345f42639f67d99282813247ac670dc6e87cb")
# Languages with enough pages; English gets more, as most traffic is English.
_TLDR_LANGS = {"": 240, **dict.fromkeys(
    ("ar", "de", "es", "fa", "fr", "hi", "id", "it", "ja", "ko", "nl", "pl", "pt_BR", "ru",
     "th", "tr", "uk", "zh"), 30)}


def _tldr(dev: Path, mirror: Path) -> list[Row]:
    """Command help pages in 19 languages: imperative, full of "ignore" and "system"."""
    repo, commit = TLDR
    rng = random.Random(17)
    rows = []
    for lang, count in _TLDR_LANGS.items():
        folder = f"pages.{lang}" if lang else "pages"
        files = _git_files(mirror, repo, commit, f"{folder}/common", ".md")
        files |= _git_files(mirror, repo, commit, f"{folder}/linux", ".md")
        for path in rng.sample(sorted(files), min(count, len(files))):
            channel = rng.choice(["document", "document", "tool", "user"])
            rows.append(_row(files[path].strip(), 0, "tldr", "command help page", channel))
    return rows


GITIGNORE = ("github/gitignore", "dcc0fc7bc2b5ba480cf117ad1be31bafceeaff46")


def _gitignore(dev: Path, mirror: Path) -> list[Row]:
    """Ignore-file templates: comments that tell a tool what to ignore."""
    repo, commit = GITIGNORE
    files = _git_files(mirror, repo, commit, "", ".gitignore")
    rng = random.Random(19)
    picked = rng.sample(sorted(files), min(200, len(files)))
    return [_row(files[p].strip()[:2000], 0, "gitignore", "ignore-file template",
                 rng.choice(["document", "tool"])) for p in picked if len(files[p].strip()) > 40]


LANGKIT = ("whylabs/langkit", "5d6cab1e2ff32181ba5c514aaa2a4473421dc413")


def _langkit(dev: Path, mirror: Path) -> list[Row]:
    repo, commit = LANGKIT
    themes = json.loads(_git_show(mirror, repo, commit, "langkit/themes.json"))
    return [_row(t, 1, "langkit", "jailbreak") for t in themes["jailbreak"]]


GISKARD = ("Giskard-AI/prompt-injections", "ce50a549dadc46b48c931250d2dd71d5f003c0c2")


def _giskard(dev: Path, mirror: Path) -> list[Row]:
    repo, commit = GISKARD
    table = csv.DictReader(io.StringIO(_git_show(mirror, repo, commit, "prompt_injections.csv")))
    return [_row(r["prompt"], 1, "giskard", r["group"] or "injection") for r in table
            if r["prompt"].strip()]


# Neutral passages put where an instruction template expects its input.
_FILLERS = (
    "The river rose two metres after a week of rain, and the old bridge was closed.",
    "Our team shipped the new billing page on Monday; two customers reported a typo.",
    "Die Bibliothek bleibt am Freitag wegen einer Veranstaltung geschlossen.",
    "The recipe calls for three eggs, a cup of sugar and a pinch of salt.",
    "She moved to Lisbon in 2019 and opened a small bookshop near the harbour.",
    "The committee approved the budget but postponed the vote on the new stadium.",
    "Photosynthesis turns light, water and carbon dioxide into sugar and oxygen.",
    "I loved the first half of the film, but the ending felt rushed.",
    "Le train de 8 h 15 est supprimé en raison de travaux sur la voie.",
    "The patient reported mild headaches that improved with rest and water.",
)
_JINJA_EXPR = re.compile(r"\{\{.*?\}\}", re.DOTALL)
_JINJA_STMT = re.compile(r"\{%.*?%\}", re.DOTALL)
_FORMAT_FIELD = re.compile(r"\{[a-z_0-9]+\}")


def _fill(template: str, pattern: re.Pattern[str], rng: random.Random) -> str:
    return pattern.sub(lambda _: rng.choice(_FILLERS), template).strip()


FLAN = ("google-research/FLAN", "e9e4ec6e2701182c7a91af176f705310da541277")


def _flan(dev: Path, mirror: Path) -> list[Row]:
    """FLAN's instruction templates, their inputs filled with neutral passages."""
    repo, commit = FLAN
    tree = ast.parse(_git_show(mirror, repo, commit, "flan/templates.py"))
    patterns: dict[str, list[tuple[str, str]]] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "PATTERNS":
            patterns = ast.literal_eval(node.value)
    rng = random.Random(23)
    prompts = sorted({p for pairs in patterns.values() for p, _ in pairs})
    return [_row(_fill(p, _FORMAT_FIELD, rng), 0, "flan", "instruction template")
            for p in rng.sample(prompts, min(400, len(prompts)))]


PROMPTSOURCE = ("bigscience-workshop/promptsource", "7dab96a3eeb3717cea633705135ebc488885d709")
_JINJA_FIELD = re.compile(r"^    jinja: (.*?)\n    metadata:", re.DOTALL | re.MULTILINE)


def _promptsource(dev: Path, mirror: Path) -> list[Row]:
    """PromptSource's prompt templates (the prompt side), inputs filled with neutral text."""
    import yaml  # noqa: PLC0415 - only the training script needs it

    repo, commit = PROMPTSOURCE
    files = _git_files(mirror, repo, commit, "promptsource/templates", "templates.yaml")
    prompts: set[str] = set()
    for body in files.values():
        for raw in _JINJA_FIELD.findall(body):
            try:
                jinja = yaml.safe_load("x: " + raw)["x"]
            except yaml.YAMLError:
                continue
            if isinstance(jinja, str) and "|||" in jinja:
                prompts.add(_JINJA_STMT.sub("", jinja.split("|||")[0]))
    rng = random.Random(29)
    picked = rng.sample(sorted(prompts), min(400, len(prompts)))
    rows = [_row(_fill(p, _JINJA_EXPR, rng), 0, "promptsource", "prompt template")
            for p in picked]
    return [r for r in rows if len(str(r["text"])) > 20]


def _synthetic(dev: Path, mirror: Path) -> list[Row]:
    return [{**row, "source": synthetic.SOURCE} for row in synthetic.generate()]


SOURCES: tuple[Source, ...] = (
    Source("deepset",
           "deepset/prompt-injections via dev.jsonl (mirror sinanw/llm-security-prompt-injection)",
           "c8af0b015a9a4f3380f9e20214828c2dbeadc72c", "Apache-2.0", "train",
           "injections and benign questions, English and German", _dev("deepset")),
    Source("awesome-chatgpt-prompts", "f/awesome-chatgpt-prompts via dev.jsonl",
           "32cb65f4bae5f46bfa7c1cb8af2aeb6c1a57b098", "CC0-1.0", "train",
           "benign 'act as' role prompts (hard negatives)", _dev("awesome-chatgpt-prompts")),
    Source("gptfuzz", "github.com/sherdencooper/GPTFuzz datasets/prompts/GPTFuzzer.csv + "
           "datasets/questions/question_list.csv", GPTFUZZ[1], "MIT", "train",
           "77 role-play jailbreak templates, each filled with 4 of the listed questions",
           _gptfuzz),
    Source("bipia", "github.com/microsoft/BIPIA benchmark/{email,table,code}, *_attack_*.json",
           BIPIA[1], "MIT (repository; contexts from WikiTableQuestions and Stack Exchange are "
           "CC BY-SA, see the repository's NOTICE.md)", "train",
           "documents, and documents with a responder-directed attack inserted", _bipia),
    Source("self-instruct", "github.com/yizhongw/self-instruct seed_tasks.jsonl + "
           "user_oriented_instructions.jsonl", SELF_INSTRUCT[1], "Apache-2.0", "train",
           "benign instructions with their inputs", _self_instruct),
    Source("gsm8k", "github.com/openai/grade-school-math grade_school_math/data/test.jsonl",
           GSM8K[1], "MIT", "train", "600 benign math word problems", _gsm8k),
    Source(synthetic.SOURCE, "scripts/injection_data (this repository)", "this commit",
           "Apache-2.0", "train", "synthetic: 16 languages, indirect (document/tool), encodings, "
           "role-play, hard negatives", _synthetic),
    Source("tldr", "github.com/tldr-pages/tldr pages{,.<lang>}/{common,linux}/*.md",
           TLDR[1], "CC-BY-4.0", "train",
           "benign command help pages in 19 languages (user, document and tool channels)",
           _tldr),
    Source("gitignore", "github.com/github/gitignore *.gitignore", GITIGNORE[1], "CC0-1.0",
           "train", "benign ignore-file templates (document and tool channels)", _gitignore),
    Source("flan", "github.com/google-research/FLAN flan/templates.py", FLAN[1], "Apache-2.0",
           "train", "benign instruction templates, inputs filled with neutral passages", _flan),
    Source("promptsource", "github.com/bigscience-workshop/promptsource "
           "promptsource/templates/**/templates.yaml", PROMPTSOURCE[1], "Apache-2.0", "train",
           "benign prompt templates (prompt side), inputs filled with neutral passages",
           _promptsource),
    Source("langkit", "github.com/whylabs/langkit langkit/themes.json (jailbreak)",
           LANGKIT[1], "Apache-2.0", "train", "role-play jailbreak prompts", _langkit),
    Source("giskard", "github.com/Giskard-AI/prompt-injections prompt_injections.csv",
           GISKARD[1], "MIT (file); it copies garak and PromptInject prompts", "eval",
           "garak and PromptInject injections: garak's data is reserved for independent "
           "evaluation, so this is evaluation only, never in shipped weights", _giskard),
    Source("tensor-trust", "HumanCompatibleAI/tensor-trust-data via dev.jsonl",
           "e2385ea9cf448c9641b96e2e39f113ed4979a5b0", "none (no licence file)", "eval",
           "hijacking and extraction attacks; evaluation only, never in shipped weights",
           _dev("tensor-trust")),
)
