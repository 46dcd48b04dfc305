"""Entity quality floors on real labelled slices never used in training (tests/fixtures/nlp/ner/PROVENANCE.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from nlp.entities import EntityExtractor
from nlp.ner_data import Sentence, read_germeval, read_wnut, score_spans

NER_FIXTURES = Path(__file__).parents[1] / "fixtures" / "nlp" / "ner"

# A little under what the shipped models score on these exact slices (model cards give the
# full-split numbers); a retrained model that drops below these has regressed.
FLOORS = {
    # spaCy: measured 0.385 on the 250-post WNUT-17 dev slice (0.419 on all 1,009) and 0.649 on
    # the 150-sentence GermEval-2014 held-out slice (0.622 on all 440)
    "spacy": {"en": 0.34, "de": 0.58},
    # fine-tuned e5: measured 0.559 on the WNUT-17 slice (0.599 on all 1,009) and 0.841 on the
    # GermEval slice (0.826 on all 440; nlp/models/ner_e5/MODEL_CARD.md). Both floors are above
    # the targets (0.45 EN, 0.75 DE).
    "e5": {"en": 0.50, "de": 0.78},
    # shared pass (heads on the sentiment encoder): measured 0.575 on the WNUT-17 slice (0.594 on
    # all 1,009) and 0.822 on the GermEval slice (0.824 on all 440); also above the targets.
    "shared": {"en": 0.50, "de": 0.76},
}


@pytest.fixture(scope="module", params=["e5", "spacy", "shared"])
def extractor(request: pytest.FixtureRequest) -> EntityExtractor:
    # No brands: the ruler would relabel names the gold data calls ORG or LOC.
    return EntityExtractor([], engine=request.param)


def micro_f1(extractor: EntityExtractor, sentences: list[Sentence], lang: str) -> float:
    found = extractor.extract([s.text for s in sentences], lang)
    pred = [{(e.start_char, e.end_char, e.label) for e in spans} for spans in found]
    return score_spans([s.char_spans() for s in sentences], pred)["micro_f1"]


def test_english_quality_floor_on_wnut17_dev(extractor: EntityExtractor) -> None:
    sentences = read_wnut(NER_FIXTURES / "ner_en_wnut17_dev_250.conll")
    assert len(sentences) == 250
    assert micro_f1(extractor, sentences, "en") >= FLOORS[extractor.engine]["en"]


def test_german_quality_floor_on_germeval2014_heldout(extractor: EntityExtractor) -> None:
    sentences = read_germeval(NER_FIXTURES / "ner_de_germeval2014_heldout_150.tsv")
    assert len(sentences) == 150
    assert micro_f1(extractor, sentences, "de") >= FLOORS[extractor.engine]["de"]


def test_labels_map_onto_the_project_set() -> None:
    (sentence,) = read_germeval(NER_FIXTURES / "ner_de_germeval2014_heldout_150.tsv")[:1]
    assert {label for *_, label in sentence.char_spans()} <= {"PER", "ORG", "LOC", "MISC"}
    labels = {label for s in read_wnut(NER_FIXTURES / "ner_en_wnut17_dev_250.conll") for *_, label in s.spans}
    assert labels <= {"PER", "ORG", "LOC", "PRODUCT", "MISC"} and "PRODUCT" in labels
