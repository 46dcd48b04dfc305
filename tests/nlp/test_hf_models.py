"""Bring your own model: real tiny Hugging Face models, built here from real labelled rows, replace the bundled ones.

The models are trained in a session fixture (tests/nlp/hf_tiny.py) on the very rows some tests
score them on, so "better than the majority class" below shows that the model loaded through
the project's code is the model that was trained, not that it generalises.
"""

from __future__ import annotations

import re
import sys
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="the Hugging Face extra is not installed: pip install -e '.[hf]'")
pytest.importorskip("transformers", reason="the Hugging Face extra is not installed: pip install -e '.[hf]'")

import hf_tiny

from nlp.errors import ModelMissingError
from nlp.hf_models import (
    ENTITY_LABELS,
    INTENT_LABELS,
    HFSequenceClassifier,
    HFTokenClassifier,
    ModelLabelError,
)
from nlp.intent import IntentResult
from nlp.pipeline import Enricher, build_enricher
from nlp.records import PostText
from resonanz.settings import load_settings
from warehouse.db import open_warehouse
from warehouse.stages import posts_to_enrich, save_enrichment

SENTIMENT = ("negative", "neutral", "positive")


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return hf_tiny.build_all(tmp_path_factory.mktemp("hf-models"))


def write_config(tmp_path: Path, **nlp: str) -> Path:
    lines = ["[nlp]"] + [f'{key} = "{value}"' for key, value in nlp.items()]
    config = tmp_path / "resonanz.toml"
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return config


def accuracy(predicted: list, gold: list[str]) -> float:
    return sum(p is not None and p.label == g for p, g in zip(predicted, gold)) / len(gold)


def majority_share(gold: list[str]) -> float:
    return max(gold.count(label) for label in set(gold)) / len(gold)


def test_sentiment_model_runs_on_en_and_de(tiny: dict[str, Path]) -> None:
    model = HFSequenceClassifier(tiny["sentiment"])
    rows = hf_tiny.sentiment_rows()
    for lang, part in (("en", rows[:300]), ("de", rows[300:])):
        predicted = model.predict([text for _, text in part], lang)
        gold = [label for label, _ in part]
        assert all(p is not None and p.label in SENTIMENT and 1 / 3 <= p.score <= 1 for p in predicted)
        # Scored on its own training rows: this shows the saved weights are the ones loaded.
        assert accuracy(predicted, gold) > majority_share(gold) + 0.1, lang
    assert model.predict(["", "😡", "https://t.co/x @someone"], "en") == [None, None, None]
    assert model.predict(["😡😡😡"], "en")[0].label in SENTIMENT  # emoji carry sentiment
    assert model.predict(["Great!"], "fr") == [None]  # not a configured language


def test_model_version_follows_the_weights_and_the_label_mapping(tiny: dict[str, Path]) -> None:
    first = HFSequenceClassifier(tiny["sentiment"])
    assert HFSequenceClassifier(tiny["sentiment"]).model_version == first.model_version
    retrained = HFSequenceClassifier(tiny["sentiment_retrained"])
    assert retrained.model_version != first.model_version
    swapped = HFSequenceClassifier(tiny["sentiment"], labels={"negative": "positive", "positive": "negative"})
    assert swapped.model_version != first.model_version
    text = [hf_tiny.sentiment_rows()[0][1]]
    flip = {"negative": "positive", "positive": "negative", "neutral": "neutral"}
    assert swapped.predict(text, "en")[0].label == flip[first.predict(text, "en")[0].label]


def test_anonymous_labels_need_a_mapping(tiny: dict[str, Path]) -> None:
    with pytest.raises(ModelLabelError, match=r'sentiment_labels = \{ "LABEL_0" = "negative" \}'):
        HFSequenceClassifier(tiny["sentiment_anonymous"])
    mapped = HFSequenceClassifier(
        tiny["sentiment_anonymous"], labels={"LABEL_0": "negative", "LABEL_1": "neutral", "LABEL_2": "positive"})
    named = HFSequenceClassifier(tiny["sentiment"])
    texts = [text for _, text in hf_tiny.sentiment_rows()[:40]]
    assert mapped.predict(texts, "de") == named.predict(texts, "de")  # same weights, names from the config
    with pytest.raises(ModelLabelError, match="unknown labels"):
        HFSequenceClassifier(tiny["sentiment_anonymous"], labels={"LABEL_0": "angry"})


def test_intent_model_gives_intent_results(tiny: dict[str, Path]) -> None:
    with pytest.raises(ModelLabelError, match="intent_labels"):
        HFSequenceClassifier(tiny["sentiment"], targets=INTENT_LABELS, setting="intent_labels")
    model = HFSequenceClassifier(tiny["intent"], targets=INTENT_LABELS, result=IntentResult)
    rows = hf_tiny.intent_rows()
    predicted = model.predict([text for _, text in rows], "de")
    assert all(isinstance(p, IntentResult) and p.label in INTENT_LABELS for p in predicted if p is not None)
    assert sum(p is not None for p in predicted) >= 0.95 * len(rows)
    assert accuracy(predicted, [label for label, _ in rows]) > majority_share([label for label, _ in rows])


def ner_texts(sentences: list[list[tuple[str, str]]]) -> tuple[list[str], list[set[tuple[int, int, str]]]]:
    """Join tokens with spaces and return the texts with their gold (start, end, project label) spans."""
    names = {"person": "PER", "PER": "PER", "location": "LOC", "LOC": "LOC", "corporation": "ORG",
             "group": "ORG", "ORG": "ORG", "product": "PRODUCT", "creative-work": "MISC", "OTH": "MISC"}
    texts, golds = [], []
    for sentence in sentences:
        text, spans, current = "", set(), None
        for token, tag in sentence:
            begin = len(text) + (1 if text else 0)
            text = f"{text} {token}" if text else token
            kind = tag[2:]
            if tag.startswith("I-") and current and current[1] == kind:
                current = (current[0], kind, len(text))
                continue
            if current and current[1] in names:
                spans.add((current[0], current[2], names[current[1]]))
            current = (begin, kind, len(text)) if tag != "O" else None
        if current and current[1] in names:
            spans.add((current[0], current[2], names[current[1]]))
        texts.append(text)
        golds.append(spans)
    return texts, golds


def test_token_classifier_maps_wnut_and_germeval_labels(tiny: dict[str, Path]) -> None:
    model = HFTokenClassifier(tiny["ner"])
    assert model.label_map["B-person"] == "PER" and model.label_map["I-PER"] == "PER"
    assert model.label_map["B-corporation"] == "ORG" and model.label_map["B-OTH"] == "MISC"
    assert model.label_map["B-LOCderiv"] == ""  # "deutsche" is derived from a name, not a name
    sentences = hf_tiny.ner_sentences()
    for lang, part in (("en", sentences[:200]), ("de", sentences[200:])):
        texts, golds = ner_texts(part)
        found = model.extract(texts, lang)
        predicted = [{(e.start_char, e.end_char, e.label) for e in spans} for spans in found]
        for text, spans in zip(texts, found):
            assert all(e.label in ENTITY_LABELS and text[e.start_char:e.end_char] == e.text for e in spans)
        hits = sum(len(p & g) for p, g in zip(predicted, golds))
        # Exact span and label on its own training sentences (a random model finds ~none).
        assert hits / sum(len(g) for g in golds) > 0.2, lang
        assert hits / max(1, sum(len(p) for p in predicted)) > 0.2, lang
    # The long text is ~30 model windows: the pipeline strides over it instead of cutting it off.
    empty, blank, emoji, long = model.extract(["", " ", "😡😡", "Die Bahn fährt nach Berlin. " * 300], "de")
    assert empty == blank == emoji == []
    assert all(e.start_char >= 0 and e.end_char <= len("Die Bahn fährt nach Berlin. ") * 300 for e in long)


def test_missing_or_wrong_directories_say_what_to_do(tmp_path: Path, tiny: dict[str, Path]) -> None:
    with pytest.raises(ModelMissingError, match="does not exist"):
        HFSequenceClassifier(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelMissingError, match=r"no config\.json"):
        HFTokenClassifier(tmp_path / "empty")
    # A sequence classifier given as a token classifier: its labels are not entity types.
    with pytest.raises(ModelLabelError, match="ner_labels"):
        HFTokenClassifier(tiny["sentiment"])
    config = write_config(tmp_path, intent_model=str(tmp_path / "nope"))
    with pytest.raises(ModelMissingError, match="does not exist"):
        build_enricher([], load_settings(config).nlp)


EN_DE_POSTS = [
    # Real tweets from the sentiment slices (TweetEval EN, UMSAB DE) and real NER sentences
    # (WNUT-17 EN, GermEval-2014 DE): see tests/fixtures/nlp/PROVENANCE.md and hf/PROVENANCE.md.
    *(PostText("t", f"en{i}", text, "en") for i, (_, text) in enumerate(hf_tiny.sentiment_rows()[:6])),
    *(PostText("t", f"de{i}", text, "de") for i, (_, text) in enumerate(hf_tiny.sentiment_rows()[300:306])),
    *(PostText("t", f"ner{i}", " ".join(t for t, _ in s), None)
      for i, s in enumerate(hf_tiny.ner_sentences()[195:205])),
    PostText("t", "empty", "", None),
    PostText("t", "emoji", "😡😡😡🚆", "en"),
    PostText("t", "links", "https://t.co/abc https://www.bahn.de/x?y=1", None),
    PostText("t", "long", "Der ICE ist wieder zu spät. " * 40_000, None),
]


@pytest.fixture(scope="module")
def hf_enricher(tmp_path_factory: pytest.TempPathFactory, tiny: dict[str, Path], demo_brands: list) -> Enricher:
    config = write_config(tmp_path_factory.mktemp("cfg"), sentiment_model=str(tiny["sentiment"]),
                          ner_model_en=str(tiny["ner"]), ner_model_de=str(tiny["ner"]))
    return build_enricher(demo_brands, load_settings(config).nlp)


def test_configured_models_run_through_the_enricher(hf_enricher: Enricher, tiny: dict[str, Path]) -> None:
    sentiment_version = HFSequenceClassifier(tiny["sentiment"]).model_version
    ner = HFTokenClassifier(tiny["ner"])
    versions = hf_enricher.model_versions()
    assert versions["sentiment"].endswith(f"@{sentiment_version}")
    assert f"en:{ner.model_name}@{ner.model_version}" in versions["entities"]
    assert f"de:{ner.model_name}@{ner.model_version}" in versions["entities"]

    result = hf_enricher.enrich(EN_DE_POSTS)
    sentiment = {a.post_id: a for a in result.annotations if a.task == "sentiment"}
    assert len(sentiment) == len(EN_DE_POSTS)
    for post in EN_DE_POSTS[:12]:
        assert sentiment[post.post_id].label in SENTIMENT
        assert sentiment[post.post_id].model_version == sentiment_version
    assert sentiment["empty"].label is None and sentiment["links"].label is None
    assert sentiment["emoji"].label in SENTIMENT and sentiment["long"].label in SENTIMENT
    languages = {a.post_id: a.label for a in result.annotations if a.task == "language"}
    langs_with_entities = {languages[e.post_id] for e in result.entities if e.model_name == ner.model_name}
    assert langs_with_entities == {"en", "de"}
    texts = {p.post_id: p.text for p in EN_DE_POSTS}
    for span in result.entities:
        assert span.label in ENTITY_LABELS
        assert texts[span.post_id][span.start_char:span.end_char] == span.text
        if languages[span.post_id] in {"en", "de"}:
            assert (span.model_name, span.model_version) == (ner.model_name, ner.model_version)


def test_a_changed_model_re_enriches_what_it_annotated(tmp_path: Path, hf_enricher: Enricher,
                                                       tiny: dict[str, Path], demo_brands: list) -> None:
    posts = EN_DE_POSTS[:12]
    with closing(open_warehouse(tmp_path / "w.duckdb")) as con:
        for post in posts:
            con.execute("INSERT INTO posts (source, post_id, author_id, text, loaded_at) VALUES (?, ?, 'a', ?, ?)",
                        [post.source, post.post_id, post.text, datetime(2026, 1, 1, tzinfo=UTC)])
        result = hf_enricher.enrich(posts)
        save_enrichment(con, [(p.source, p.post_id) for p in posts], result.annotations, result.entities,
                        result.brand_mentions)
        assert posts_to_enrich(con, hf_enricher.model_versions()).num_rows == 0

        config = write_config(tmp_path, sentiment_model=str(tiny["sentiment_retrained"]),
                              ner_model_en=str(tiny["ner"]), ner_model_de=str(tiny["ner"]))
        retrained = build_enricher(demo_brands, load_settings(config).nlp)
        before, after = hf_enricher.model_versions(), retrained.model_versions()
        assert {task for task in after if after[task] != before[task]} == {"sentiment"}
        assert posts_to_enrich(con, after).num_rows == len(posts)  # every post had a sentiment row
        redo = retrained.enrich(posts)
        save_enrichment(con, [(p.source, p.post_id) for p in posts], redo.annotations, redo.entities,
                        redo.brand_mentions)
        assert posts_to_enrich(con, after).num_rows == 0
        stored = con.execute(
            "SELECT DISTINCT model_version FROM annotations WHERE task = 'sentiment'").fetchall()
        assert stored == [(HFSequenceClassifier(tiny["sentiment_retrained"]).model_version,)]


def test_without_transformers_the_message_says_how_to_install(tiny: dict[str, Path],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # None in sys.modules makes `import transformers` fail, as on an install without the extra.
    monkeypatch.setitem(sys.modules, "transformers", None)
    model = HFSequenceClassifier(tiny["sentiment"])  # the directory is checked, nothing is loaded yet
    with pytest.raises(ModelMissingError, match=re.escape("pip install -e '.[hf]'")):
        model.predict(["Die Bahn ist heute pünktlich"], "de")
