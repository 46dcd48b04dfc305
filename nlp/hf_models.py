"""Bring your own model: a local Hugging Face model directory replaces a bundled enrich model.

A directory written by `save_pretrained` (config.json, weights, tokenizer files) is loaded with
transformers from the path only: `local_files_only=True` and HF_HUB_OFFLINE=1, so nothing is
ever downloaded. A sequence classifier stands in for sentiment or intent, a token classifier for
the entities of one language. The model's own label names are mapped onto the project's label
sets (understood names below, or a mapping from the configuration), and the model version is a
hash of the files that decide its output, so changing the weights re-enriches exactly the posts
that model annotated.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

from nlp.entities import Entity
from nlp.errors import ModelMissingError
from nlp.intent import LABELS as INTENT_LABELS
from nlp.sentiment import SentimentResult
from nlp.sentiment_data import LABELS as SENTIMENT_LABELS
from nlp.text import for_sentiment

INSTALL_HINT = "pip install -e '.[hf]'"
ENTITY_LABELS = ("PER", "ORG", "LOC", "PRODUCT", "MISC", "BRAND")
MIN_CHARS = 2  # as the bundled sentiment model: "ok" is not a sentiment
DROP = ""  # a label mapped to "" is ignored (entities) -- e.g. dates, GermEval's *deriv/*part

# Label names published models commonly use, lower-cased with "-", "_" and spaces removed.
# Anything else must be mapped in the configuration; LABEL_0-style names never guess.
SENTIMENT_NAMES = {
    "negative": "negative", "neg": "negative", "1star": "negative", "2stars": "negative",
    "neutral": "neutral", "neu": "neutral", "3stars": "neutral",
    "positive": "positive", "pos": "positive", "4stars": "positive", "5stars": "positive",
}
INTENT_NAMES = {**{name: name for name in INTENT_LABELS}, "nointent": "none", "other": "none"}
# Entity types after the BIO/IOBES prefix: CoNLL-2003, OntoNotes, WNUT-17 and GermEval-2014 names.
ENTITY_NAMES = {
    "per": "PER", "person": "PER", "pers": "PER",
    "org": "ORG", "organization": "ORG", "organisation": "ORG", "corporation": "ORG",
    "company": "ORG", "group": "ORG",
    "loc": "LOC", "location": "LOC", "gpe": "LOC", "fac": "LOC",
    "misc": "MISC", "oth": "MISC", "creativework": "MISC", "event": "MISC", "workofart": "MISC",
    "norp": "MISC", "law": "MISC", "language": "MISC",
    "product": "PRODUCT", "prod": "PRODUCT", "brand": "BRAND",
    # Dates and amounts are not entities a listening team filters on (as for the spaCy model).
    "date": DROP, "time": DROP, "cardinal": DROP, "ordinal": DROP, "quantity": DROP,
    "money": DROP, "percent": DROP,
}
# GermEval-2014 marks derivations ("deutsche" -> LOCderiv) and parts ("EU-weit" -> ORGpart):
# words that contain a name but are not one, so they are dropped.
_GERMEVAL_PARTIAL = re.compile(r"^(per|org|loc|oth)(deriv|part)$")
_PLACEHOLDERS = re.compile(r"@user|\bhttp\b")  # what nlp.text.for_sentiment leaves of mentions and links
_BIO_PREFIX = re.compile(r"^[BIESLU][-_]")
WEIGHT_FILES = ("*.safetensors", "*.bin", "*.pt", "*.pth")
TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "merges.txt",
    "special_tokens_map.json", "added_tokens.json", "*.model",
)


class ModelLabelError(ModelMissingError):
    """A model's label names cannot be mapped onto the project's labels; the message says how."""


class HFModelConfig(Protocol):
    """The `[nlp]` configuration the enricher factory reads (resonanz.settings.NlpSettings)."""

    sentiment_model: str
    sentiment_mode: str
    sentiment_cache_entries: int
    sentiment_languages: Sequence[str]
    sentiment_labels: Mapping[str, str]
    ner_engine: str
    e5_precision: str
    expected_languages: Sequence[str]
    language_prior: float
    language_others: Sequence[str] | None
    model_scope: str
    ner_model_en: str
    ner_model_de: str
    ner_labels: Mapping[str, str]
    ner_aggregation: str
    intent_model: str
    intent_mode: str
    intent_languages: Sequence[str]
    intent_labels: Mapping[str, str]


def is_bundled(value: str | Path | None) -> bool:
    """Return True where the configuration asks for the bundled model instead of a directory."""
    return value is None or str(value).strip() in {"", "bundled"}


def _key(name: str) -> str:
    return re.sub(r"[-_\s]", "", name).lower()


def _require_transformers() -> Any:
    # Set before transformers/huggingface_hub are imported: they read it once, at import time.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        # transformers first: without the extra it fails at once, before torch takes seconds to load.
        import transformers  # noqa: I001
        from transformers.utils import logging as hf_logging
        import torch  # noqa: F401 - transformers needs it to run the model
    except ImportError as exc:
        raise ModelMissingError(
            f"a Hugging Face model is configured but transformers/torch are not installed: {INSTALL_HINT}"
        ) from exc
    hf_logging.disable_progress_bar()  # batch enrichment: a bar per model load is noise in flow logs
    return transformers


def check_model_dir(path: Path, what: str) -> Path:
    """Return `path` if it holds a saved Hugging Face model, else raise ModelMissingError."""
    if not path.is_dir():
        raise ModelMissingError(f"{what} model directory {path} does not exist; fix the path in [nlp] of resonanz.toml")
    if not (path / "config.json").is_file():
        raise ModelMissingError(
            f"{path} is not a Hugging Face model directory (no config.json); save one with "
            "model.save_pretrained(DIR) and tokenizer.save_pretrained(DIR)"
        )
    if not _files(path, WEIGHT_FILES):
        raise ModelMissingError(f"{path} has a config.json but no weights (*.safetensors or *.bin)")
    return path


def _files(path: Path, patterns: Sequence[str]) -> list[Path]:
    return sorted({f for pattern in patterns for f in path.glob(pattern) if f.is_file()})


def model_dir_digest(path: Path, label_map: Mapping[str, str]) -> str:
    """Hash the config, weights and tokenizer files and the label mapping: what decides the output."""
    digest = hashlib.sha256()
    for file in [path / "config.json", *_files(path, WEIGHT_FILES), *_files(path, TOKENIZER_FILES)]:
        digest.update(file.name.encode())
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    digest.update(json.dumps(dict(sorted(label_map.items()))).encode())
    return digest.hexdigest()[:12]


def _id2label(path: Path) -> dict[int, str]:
    config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    return {int(i): str(name) for i, name in (config.get("id2label") or {}).items()}


def map_labels(
    names: Sequence[str], targets: Sequence[str], understood: Mapping[str, str], configured: Mapping[str, str],
    setting: str, path: Path, strip: Callable[[str], str] = lambda name: name,
) -> dict[str, str]:
    """Return model label -> project label for every name, or raise ModelLabelError naming the gaps.

    A configured mapping wins (keyed by the model's label, or by its entity type); otherwise a
    name is looked up among the understood names. "" means: ignore this label.
    """
    allowed = set(targets) | {DROP}
    wrong = {k: v for k, v in configured.items() if v not in allowed}
    if wrong:
        raise ModelLabelError(f"[nlp] {setting} maps onto unknown labels {wrong}; use one of {sorted(targets)} or \"\"")
    mapping: dict[str, str] = {}
    missing: list[str] = []
    for name in names:
        base = strip(name)
        for candidate in (name, base):
            if candidate in configured:
                mapping[name] = configured[candidate]
                break
        else:
            target = understood.get(_key(base))
            if target is None:
                missing.append(name)
            else:
                mapping[name] = target
    if missing:
        raise ModelLabelError(
            f"{path}: the model's labels {missing} are not understood; map them in resonanz.toml, e.g. "
            f"[nlp] {setting} = {{ {json.dumps(missing[0])} = {json.dumps(targets[0])} }} "
            f"(targets: {', '.join(targets)}; \"\" ignores a label)"
        )
    return mapping


def _entity_type(label: str) -> str:
    return _BIO_PREFIX.sub("", label)


@dataclass(frozen=True, slots=True)
class LoadedModel:
    """A tokenizer and model in eval mode, loaded from a directory."""

    tokenizer: Any
    model: Any
    max_length: int


def _load(path: Path, auto_class: str) -> LoadedModel:
    transformers = _require_transformers()
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = getattr(transformers, auto_class).from_pretrained(path, local_files_only=True)
    except Exception as exc:
        raise ModelMissingError(f"cannot load the Hugging Face model in {path}: {exc}") from exc
    model.eval()
    positions = getattr(model.config, "max_position_embeddings", 512) or 512
    # Tokenizers without a limit report a huge sentinel; the model's positions are the real one.
    max_length = min(int(tokenizer.model_max_length or positions), int(positions))
    return LoadedModel(tokenizer, model, max_length)


class HFSequenceClassifier:
    """Sentiment or intent from a local sequence-classification model (same interface as SentimentModel)."""

    def __init__(
        self,
        path: str | Path,
        targets: Sequence[str] = SENTIMENT_LABELS,
        labels: Mapping[str, str] | None = None,
        languages: Sequence[str] = ("en", "de"),
        result: Callable[[str, float], Any] = SentimentResult,
        setting: str = "sentiment_labels",
        batch_size: int = 32,
    ) -> None:
        self.path = check_model_dir(Path(path), "sequence classification")
        self.model_name = f"hf/{self.path.resolve().name}"
        self.targets = tuple(targets)
        understood = SENTIMENT_NAMES if set(self.targets) == set(SENTIMENT_LABELS) else INTENT_NAMES
        names = list(_id2label(self.path).values())
        if not names:
            raise ModelLabelError(f"{self.path}/config.json has no id2label; it is not a classification model")
        self.label_map = map_labels(names, self.targets, understood, dict(labels or {}), setting, self.path)
        if DROP in self.label_map.values():
            raise ModelLabelError(f"[nlp] {setting}: every label of a classifier needs a target; \"\" is for entities")
        self._languages = tuple(languages)
        self._result = result
        self._batch_size = batch_size
        self._loaded: LoadedModel | None = None

    @cached_property
    def model_version(self) -> str:
        """Return a hash of config, weights, tokenizer and label mapping."""
        return model_dir_digest(self.path, self.label_map)

    @property
    def languages(self) -> tuple[str, ...]:
        """Return the languages this model is configured for."""
        return self._languages

    def predict(self, texts: list[str], lang: str) -> list[Any]:
        """Return one result per text (None where the text is too short or the language is not served)."""
        results: list[Any] = [None] * len(texts)
        cleaned = [for_sentiment(t) for t in texts]
        # Emoji carry sentiment, but a post that is only links and mentions has nothing to judge.
        keep = [i for i, t in enumerate(cleaned) if len(_PLACEHOLDERS.sub("", t).strip()) >= MIN_CHARS]
        if not keep or lang not in self._languages:
            return results
        for start in range(0, len(keep), self._batch_size):
            chunk = keep[start : start + self._batch_size]
            for i, (label, score) in zip(chunk, self._classify([cleaned[i] for i in chunk])):
                results[i] = self._result(label, score)
        return results

    def _classify(self, texts: list[str]) -> list[tuple[str, float]]:
        import torch

        loaded = self._load()
        batch = loaded.tokenizer(texts, padding=True, truncation=True, max_length=loaded.max_length, return_tensors="pt")
        with torch.inference_mode():
            probs = torch.softmax(loaded.model(**batch).logits, dim=-1).numpy()
        id2label = loaded.model.config.id2label
        out = []
        for row in probs:
            # Several model labels may share one target (e.g. "4 stars" and "5 stars"): add them up.
            mass = dict.fromkeys(self.targets, 0.0)
            for j, p in enumerate(row):
                mass[self.label_map[id2label[j]]] += float(p)
            best = max(self.targets, key=mass.__getitem__)
            out.append((best, mass[best]))
        return out

    def _load(self) -> LoadedModel:
        if self._loaded is None:
            self._loaded = _load(self.path, "AutoModelForSequenceClassification")
        return self._loaded


class HFTokenClassifier:
    """Entities from a local token-classification model, for the texts of one language."""

    def __init__(
        self,
        path: str | Path,
        labels: Mapping[str, str] | None = None,
        aggregation_strategy: str = "first",
        batch_size: int = 16,
    ) -> None:
        if aggregation_strategy not in {"simple", "first", "average", "max"}:
            raise ValueError(f"aggregation_strategy must be simple, first, average or max, not {aggregation_strategy!r}")
        self.path = check_model_dir(Path(path), "token classification")
        self.model_name = f"hf/{self.path.resolve().name}"
        names = [n for n in _id2label(self.path).values() if n.upper() != "O"]
        if not names:
            raise ModelLabelError(f"{self.path}/config.json has no entity labels in id2label")
        partial = {_key(_entity_type(n)) for n in names} - set(ENTITY_NAMES)
        understood = {**ENTITY_NAMES, **{k: DROP for k in partial if _GERMEVAL_PARTIAL.match(k)}}
        self.label_map = map_labels(names, ENTITY_LABELS, understood, dict(labels or {}), "ner_labels",
                                    self.path, strip=_entity_type)
        # The pipeline groups B-/I- tokens into one span named by the bare type.
        self._type_map = {_entity_type(n): t for n, t in self.label_map.items()}
        self.aggregation_strategy = aggregation_strategy
        self._batch_size = batch_size
        self._pipeline: Any = None

    @cached_property
    def model_version(self) -> str:
        """Return a hash of config, weights, tokenizer, label mapping and aggregation."""
        return f"{model_dir_digest(self.path, self.label_map)}+{self.aggregation_strategy}"

    def extract(self, texts: list[str], lang: str) -> list[list[Entity]]:
        """Return the entities of each text, offsets into the text as given."""
        results: list[list[Entity]] = [[] for _ in texts]
        todo = [i for i, t in enumerate(texts) if t.strip()]
        if not todo:
            return results
        found = self._run([texts[i] for i in todo])
        for i, groups in zip(todo, found):
            text = texts[i]
            for group in groups:
                label = self._type_map.get(group["entity_group"], DROP)
                start, end = int(group["start"]), int(group["end"])
                # Sub-word tokenizers put the leading space inside the span; offsets stay on the word.
                while start < end and text[start].isspace():
                    start += 1
                if label != DROP and start < end:
                    results[i].append(Entity(start, end, label, text[start:end]))
        return results

    def _run(self, texts: list[str]) -> list[list[dict[str, Any]]]:
        pipe = self._load()
        found = pipe(texts, batch_size=self._batch_size, stride=max(1, pipe.tokenizer.model_max_length // 4))
        # One text in gives one list out, not a list of lists.
        return [found] if len(texts) == 1 and (not found or isinstance(found[0], dict)) else found

    def _load(self) -> Any:
        if self._pipeline is None:
            loaded = _load(self.path, "AutoModelForTokenClassification")
            if not loaded.tokenizer.is_fast:
                raise ModelMissingError(f"{self.path}: entity offsets need a fast tokenizer (a tokenizer.json file)")
            loaded.tokenizer.model_max_length = loaded.max_length
            transformers = _require_transformers()
            self._pipeline = transformers.pipeline(
                "token-classification", model=loaded.model, tokenizer=loaded.tokenizer,
                aggregation_strategy=self.aggregation_strategy, device=-1,
            )
        return self._pipeline


class EntityRouter:
    """Use a Hugging Face token classifier for the configured languages and the bundled extractor otherwise.

    Shaped like nlp.entities.EntityExtractor (model, extract, brand_digest), so the enricher
    does not need to know which one it has; anything else is the bundled extractor's.
    """

    def __init__(self, bundled: Any, models: Mapping[str, HFTokenClassifier]) -> None:
        self._bundled = bundled
        self._models = dict(models)

    @property
    def brand_digest(self) -> str:
        """The bundled brand ruler's digest (relevance still comes from the brand list)."""
        return self._bundled.brand_digest

    def model(self, lang: str) -> tuple[str, str]:
        """Return (model_name, model_version) used for texts in `lang`."""
        if lang in self._models:
            return self._models[lang].model_name, self._models[lang].model_version
        return self._bundled.model(lang)

    def extract(self, texts: list[str], lang: str) -> list[list[Entity]]:
        """Return the entities of each text in `lang`."""
        if lang in self._models:
            return self._models[lang].extract(texts, lang)
        return self._bundled.extract(texts, lang)

    def __getattr__(self, name: str) -> Any:
        # Methods the bundled extractor grows later keep working through the router.
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._bundled, name)
