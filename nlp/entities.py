"""Named entities: the project's trained spaCy NER per language, with the brand EntityRuler on top for DE.

EN uses nlp/models/ner_en (spaCy's small English NER fine-tuned on WNUT-17 tweets), DE uses
nlp/models/ner_de (trained from GermEval-2014); both are rebuilt by `python -m nlp.train_ner`
and described in their MODEL_CARD.md. Other languages get the brand ruler only.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nlp.brands import BrandConfig, _is_short_caps
from nlp.errors import ModelMissingError
from nlp.text import MAX_CHARS

MODELS_DIR = Path(__file__).resolve().parent / "models"
MODEL_DIRS = {"en": "ner_en", "de": "ner_de"}
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

    `models_dir` holds ner_en/ and ner_de/ (default: nlp/models); tests point it elsewhere.
    """

    def __init__(self, brands: list[BrandConfig], models_dir: Path | None = None) -> None:
        self._brands = brands
        self._models_dir = models_dir or MODELS_DIR
        self._pipelines: dict[str, Any] = {}
        self._weights: dict[str, str] = {}  # artefact digest per language, computed once
        self._brand_digest = _brand_digest(brands)

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
            path = self._models_dir / MODEL_DIRS[key]
            self._weights[key] = artefact_digest(path) if (path / "meta.json").is_file() else "missing"
        weights = self._weights[key]
        if key == "en":
            return f"spacy/{MODEL_DIRS[key]}", f"{spacy.__version__}+{weights}"
        return f"spacy/{MODEL_DIRS[key]}+brand-ruler", f"{spacy.__version__}+{weights}+brands.{self._brand_digest}"

    def extract(self, texts: list[str], lang: str) -> list[list[Entity]]:
        """Return the entities of each text (all texts in one language), batched through spaCy."""
        nlp = self._pipeline(lang)
        results: list[list[Entity]] = []
        for doc in nlp.pipe((text[:MAX_CHARS] for text in texts), batch_size=64):
            spans = []
            for ent in doc.ents:
                label = LABELS.get(ent.label_)
                if label is not None and (label == "BRAND" or _is_name_like(ent)):
                    spans.append(Entity(ent.start_char, ent.end_char, label, ent.text))
            results.append(spans)
        return results

    def _pipeline(self, lang: str) -> Any:
        key = _key(lang)
        if key not in self._pipelines:
            self._pipelines[key] = self._load(key)
        return self._pipelines[key]

    def _load(self, key: str) -> Any:
        import spacy

        if key == "xx":
            return self._with_ruler(spacy.blank("xx"))
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
