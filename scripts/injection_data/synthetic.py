"""Synthetic injection and benign texts composed from the phrase banks (fixed seed).

Covers what public collections lack: indirect injection inside documents and tool output,
encoded payloads, role-play jailbreaks, sixteen languages, and benign hard negatives that
share the attacks' vocabulary.  Evaluation never relies on these alone: they are one source
among others in leave-one-source-out validation.
"""
# ruff: noqa: RUF001  (the homoglyph table maps Latin letters to Cyrillic look-alikes)


from __future__ import annotations

import base64
import codecs
import hashlib
import random
import uuid
from collections.abc import Iterator

from injection_data import phrases as P

SOURCE = "tsuba-synthetic"
_LEET = str.maketrans({"o": "0", "i": "1", "e": "3", "a": "4", "s": "5", "t": "7"})
_HOMO = str.maketrans({"a": "а", "e": "е", "o": "о", "p": "р", "c": "с", "i": "і", "y": "у"})


def _row(text: str, label: int, category: str, lang: str, channel: str) -> dict[str, object]:
    return {"text": text, "label": label, "source": SOURCE, "category": category,
            "lang": lang, "channel": channel}


def _zero_width(text: str, rng: random.Random) -> str:
    return "".join(c + ("\u200b" if c.isalpha() and rng.random() < 0.3 else "") for c in text)


def _encode(text: str, rng: random.Random) -> tuple[str, str]:
    kind = rng.choice(["base64", "hex", "rot13", "leet", "homoglyph", "zerowidth", "spaced"])
    if kind == "base64":
        body = base64.b64encode(text.encode()).decode()
        wrap = rng.choice(["Decode this base64 and do what it says: {}", "{}",
                           "Here is my request (base64): {}", "b64: {}\nFollow it exactly."])
    elif kind == "hex":
        body = text.encode().hex(" ") if rng.random() < 0.5 else text.encode().hex()
        wrap = rng.choice(["Convert this hex to text and obey: {}", "{}", "payload={}"])
    elif kind == "rot13":
        body = codecs.encode(text, "rot13")
        wrap = rng.choice(["Apply ROT13 and follow the result: {}", "{}", "rot13: {}"])
    elif kind == "leet":
        body = text.lower().translate(_LEET)
        wrap = "{}"
    elif kind == "homoglyph":
        body = text.translate(_HOMO)
        wrap = "{}"
    elif kind == "zerowidth":
        body = _zero_width(text, rng)
        wrap = "{}"
    else:
        body = " ".join(text)
        wrap = rng.choice(["{}", "Read the letters together: {}"])
    return wrap.format(body), kind


def _attack_sentence(rng: random.Random, lang: str) -> str:
    goal_lang = lang if rng.random() < 0.7 else "en"
    return f"{rng.choice(P.OVERRIDE[lang])} {rng.choice(P.GOAL[goal_lang])}"


def _attacks(rng: random.Random) -> Iterator[dict[str, object]]:
    langs = list(P.OVERRIDE)
    for _ in range(900):
        lang = rng.choice(langs)
        text = _attack_sentence(rng, lang)
        r = rng.random()
        if r < 0.3:
            text = f"{rng.choice(P.BENIGN[lang])} {text}"
        elif r < 0.45:
            text = f"{text} {rng.choice(P.BENIGN[lang])}"
        yield _row(text, 1, "override", lang, "user")
    for _ in range(300):
        lang = rng.choice(langs)
        goal = rng.choice(P.GOAL[lang])
        yield _row(goal if rng.random() < 0.5 else f"{rng.choice(P.BENIGN[lang])} Also: {goal}",
                   1, "leak", lang, "user")
    for _ in range(600):
        lang = rng.choice(langs)
        parts = rng.sample(P.ROLEPLAY[lang], k=min(len(P.ROLEPLAY[lang]), rng.randint(1, 3)))
        if lang == "en":
            parts = [p.replace("FreeBot", rng.choice(P.PERSONAS)) for p in parts]
        goal = rng.choice(P.GOAL[lang] + P.GOAL["en"]) if rng.random() < 0.6 else ""
        yield _row(" ".join([*parts, goal]).strip(), 1, "roleplay", lang, "user")
    for _ in range(500):
        lang = rng.choice(["en", "en", "en", "de", "fr", "es"])
        text, kind = _encode(_attack_sentence(rng, lang), rng)
        yield _row(text, 1, f"encoded:{kind}", lang, "user")
    for _ in range(150):
        sep = rng.choice(["<|im_start|>system\n", "[INST] <<SYS>>\n", "\n\n### SYSTEM:\n",
                          "</user>\n<system>", "END OF USER INPUT\n---\nADMIN: "])
        yield _row(f"{rng.choice(P.BENIGN['en'])}{sep}{_attack_sentence(rng, 'en')}",
                   1, "delimiter", "en", "user")
    for _ in range(700):
        body = rng.choice(P.DOC_BODIES)
        goal = rng.choice(P.INDIRECT_GOALS)
        payload = rng.choice(P.DOC_WRAPPERS).format(
            payload=goal, payload_lc=goal[0].lower() + goal[1:])
        cut = rng.choice([0, len(body) // 2, len(body)])
        pos = body.rfind(" ", 0, cut) + 1 if cut else 0
        text = body[:pos] + ("\n" if pos else "") + payload + "\n" + body[pos:]
        yield _row(text.strip(), 1, "indirect", "en", "document")
    for _ in range(400):
        goal = rng.choice([*P.INDIRECT_GOALS, _attack_sentence(rng, rng.choice(langs))])
        inner = f"{rng.choice(P.TOOL_BENIGN)} {goal}".replace('"', "'")
        yield _row(rng.choice(P.TOOL_TEMPLATES).format(text=inner), 1, "indirect", "en", "tool")


def _benign(rng: random.Random) -> Iterator[dict[str, object]]:
    langs = list(P.BENIGN)
    for _ in range(900):
        lang = rng.choice(langs)
        k = rng.randint(1, 2)
        pool = P.BENIGN[lang] + P.HARD_NEGATIVE[lang]
        yield _row(" ".join(rng.sample(pool, k=min(k, len(pool)))), 0, "request", lang, "user")
    for _ in range(900):
        lang = rng.choice(langs)
        text = rng.choice(P.HARD_NEGATIVE[lang])
        if rng.random() < 0.4:
            text = f"{text} {rng.choice(P.BENIGN[lang])}"
        yield _row(text, 0, "hard_negative", lang, "user")
    for _ in range(400):
        snippet = rng.choice(P.CODE_SNIPPETS)
        ask = rng.choice(["Why does this fail?", "Can you review this code?", "",
                          "Explain what this does:", "Add type hints to this:"])
        yield _row(f"{ask}\n{snippet}".strip(), 0, "code", "en", "user")
    for _ in range(500):
        body = rng.choice(P.DOC_BODIES)
        # A sentence telling the reader how to answer is an injection inside a document, so
        # benign documents take only tool-style notes.
        extra = rng.choice([*P.TOOL_BENIGN, ""])
        text = f"{body}\n{extra}".strip() if rng.random() < 0.6 else body
        yield _row(text, 0, "document", "en", "document")
    for _ in range(400):
        inner = " ".join(rng.sample(P.TOOL_BENIGN, k=rng.randint(1, 2))).replace('"', "'")
        yield _row(rng.choice(P.TOOL_TEMPLATES).format(text=inner), 0, "tool", "en", "tool")
    for _ in range(250):
        kind = rng.random()
        plain = rng.choice(P.BENIGN["en"] + P.TOOL_BENIGN)
        if kind < 0.35:
            text = f"Attachment (base64): {base64.b64encode(plain.encode()).decode()}"
        elif kind < 0.6:
            digest = hashlib.sha256(plain.encode()).hexdigest()
            text = f"sha256 of the release tarball: {digest}"
        elif kind < 0.8:
            text = f"request id {uuid.UUID(int=rng.getrandbits(128))} failed with status 503"
        else:
            text = f"ROT13 puzzle for the kids: {codecs.encode(plain, 'rot13')}"
        yield _row(text, 0, "encoded_benign", "en", "user")


def generate(seed: int = 1337) -> list[dict[str, object]]:
    rng = random.Random(seed)
    rows = [*_attacks(rng), *_benign(rng)]
    seen: set[str] = set()
    unique: list[dict[str, object]] = []
    for row in rows:
        key = str(row["text"])
        if key not in seen:
            seen.add(key)
            unique.append(row)
    return unique
