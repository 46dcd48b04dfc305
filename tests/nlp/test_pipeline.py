"""Enricher end to end on real EN/DE posts and on bad input; rows fit the warehouse tables."""

from __future__ import annotations

import gc
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest

from nlp.pipeline import Enricher, models_out_of_gc
from nlp.records import Annotation, Enrichment, PostText
from nlp.sentiment import SentimentModel, SentimentResult
from resonanz.settings import Brand
from warehouse.db import open_warehouse
from warehouse.stages import save_enrichment

REAL_POSTS = [
    # Real posts: TWCS (EN) and GermEval-2017 (DE), see tests/fixtures/nlp/PROVENANCE.md.
    PostText("x", "en1", "@AppleSupport my Apple TV works fine with my phone, but when playing videos on Mac air it stutters so much", "en"),
    PostText("x", "en2", "I'm NEVER using Amazon again! After waiting in all day as item is \"out for delivery\", they've only gone and sent it to the WRONG COUNTRY!", None),
    PostText("x", "de1", "@DB_Bahn Wenn ein Unternehmen so konstant Mist baut wie eures, dann würde ich mir pseudolustige Sprüche gepflegt klemmen.", "de"),
    PostText("x", "de2", "RT @nhitastic: Wisst ihr was geil ist? WLAN in der deutschen Bahn! @DB_Bahn haha", None),
]

BAD_POSTS = [
    PostText("x", "empty", "", None),
    PostText("x", "spaces", " \n\t ", None),
    PostText("x", "emoji", "😡😡😡🚆", None),
    PostText("x", "links", "https://t.co/abc https://www.bahn.de/x?y=1", None),
    PostText("x", "surrogate", "Die Bahn \ud83d kommt \udc00 nie", "de"),
    PostText("x", "nul", "Amazon\x00Prime kaputt", None),
    PostText("x", "long", "Der ICE ist wieder zu spät. " + "Wir warten und warten. " * 50_000 + "Danke, DB!", None),
    PostText("x", "french", "Merci beaucoup pour votre aide, le service client était vraiment excellent", None),
    PostText("x", "hint_only", "👍", "de"),
]


@pytest.fixture(scope="module")
def real(enricher: Enricher) -> Enrichment:
    return enricher.enrich(REAL_POSTS)


@pytest.fixture(scope="module")
def bad(enricher: Enricher) -> Enrichment:
    return enricher.enrich(BAD_POSTS)


def annotation(result: Enrichment, post_id: str, task: str) -> Annotation:
    (row,) = [a for a in result.annotations if a.post_id == post_id and a.task == task]
    return row


def test_every_post_gets_one_row_per_task(enricher: Enricher, real: Enrichment, bad: Enrichment) -> None:
    tasks = set(enricher.model_versions())
    assert tasks == {"language", "sentiment", "intent", "entities", "relevance"}
    for result, posts in ((real, REAL_POSTS), (bad, BAD_POSTS)):
        keys = sorted((a.post_id, a.task) for a in result.annotations)
        assert keys == sorted((p.post_id, t) for p in posts for t in tasks)


def test_real_english_and_german_posts(real: Enrichment) -> None:
    assert [annotation(real, p, "language").label for p in ("en1", "en2", "de1", "de2")] == ["en", "en", "de", "de"]
    assert annotation(real, "en2", "sentiment").label == "negative"
    assert annotation(real, "de1", "sentiment").label == "negative"
    for post_id in ("en1", "en2", "de1", "de2"):
        score = annotation(real, post_id, "sentiment").score
        assert score is not None and 1 / 3 <= score <= 1.0
    brands = {(m.post_id, m.brand, m.matched_text) for m in real.brand_mentions}
    assert brands == {
        ("en1", "Apple", "@AppleSupport"),
        ("en1", "Apple", "Apple"),
        ("en2", "Amazon", "Amazon"),
        ("de1", "Deutsche Bahn", "@DB_Bahn"),
        ("de2", "Deutsche Bahn", "Bahn"),
        ("de2", "Deutsche Bahn", "@DB_Bahn"),
    }
    # Sentiment toward each brand: one clause, one target -> the post's sentiment ...
    for mention in real.brand_mentions:
        if mention.post_id in {"en2", "de1"}:
            assert mention.sentiment == annotation(real, mention.post_id, "sentiment").label
    # ... while "my Apple TV works fine ..., but ... it stutters" judges each mention on its clause.
    en1 = {m.matched_text: m.sentiment for m in real.brand_mentions if m.post_id == "en1"}
    assert en1 == {"@AppleSupport": "negative", "Apple": "positive"}
    # Purchase intent: "I'm NEVER using Amazon again!" is churn; a complaint without leaving is not.
    assert annotation(real, "en2", "intent").label == "churn"
    assert annotation(real, "en1", "intent").label == "complaint"
    # Sarcasm about the on-board WiFi ("Wisst ihr was geil ist? WLAN in der deutschen Bahn! haha"):
    # a complaint, which the encoder's states see and the n-grams alone did not ("none").
    assert annotation(real, "de2", "intent").label == "complaint"
    # The German NER model runs under the brand ruler; brand spans win.
    de = {(e.post_id, e.text, e.label) for e in real.entities if e.post_id.startswith("de")}
    assert {("de1", "@DB_Bahn", "BRAND"), ("de2", "Bahn", "BRAND"), ("de2", "@DB_Bahn", "BRAND")} <= de
    assert all(e.label == "BRAND" for e in real.entities if e.text in {"@DB_Bahn", "Bahn"})
    assert {e.model_name for e in real.entities if e.post_id.startswith("de")} == {"e5-shared-ner/de+brand-ruler"}


def test_bad_input_gets_defined_results(bad: Enrichment) -> None:
    for post_id in ("empty", "spaces", "emoji", "links"):
        assert annotation(bad, post_id, "language").label == "und"
        assert annotation(bad, post_id, "sentiment").label is None
    assert annotation(bad, "surrogate", "language").label == "de"
    assert annotation(bad, "surrogate", "sentiment").label is not None
    assert annotation(bad, "long", "language").label == "de"
    assert annotation(bad, "long", "sentiment").label in {"negative", "neutral", "positive"}
    assert annotation(bad, "french", "language").label == "fr"
    assert annotation(bad, "french", "sentiment").label is None  # no head for French yet
    assert annotation(bad, "french", "intent").label is None
    for post_id in ("empty", "spaces", "emoji", "links"):
        assert annotation(bad, post_id, "intent").label is None
    assert annotation(bad, "hint_only", "language").label == "de"
    # Brand matching runs on the whole long post (models read its first 5,000 characters).
    assert [(m.brand, m.matched_text) for m in bad.brand_mentions if m.post_id == "long"] == [
        ("ICE", "ICE"),
        ("Deutsche Bahn", "DB"),
    ]
    assert {(m.brand, m.matched_text) for m in bad.brand_mentions if m.post_id == "nul"} == {("Prime", "Amazon Prime")}


def test_model_versions_are_on_every_row(enricher: Enricher, real: Enrichment, bad: Enrichment) -> None:
    versions = enricher.model_versions()
    assert set(versions) >= {"language", "sentiment"}
    for result in (real, bad):
        for row in result.annotations:
            assert row.model_name and row.model_version
            assert versions[row.task] == f"{row.model_name}@{row.model_version}"
        for span in result.entities:
            assert span.model_name and span.model_version


def test_rows_load_into_the_warehouse_tables(tmp_path: Path, enricher: Enricher, real: Enrichment,
                                             bad: Enrichment) -> None:
    con = open_warehouse(tmp_path / "enrich.duckdb")
    now = datetime(2026, 1, 1, tzinfo=UTC)
    for posts, result in ((REAL_POSTS, real), (BAD_POSTS, bad)):
        keys = [(p.source, p.post_id) for p in posts]
        save_enrichment(con, keys, result.annotations, result.entities, result.brand_mentions, now)
    counts = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
              for t in ("annotations", "entities", "brand_mentions")}
    # One row per post and task, so the warehouse knows which model version saw each post.
    assert counts["annotations"] == len(enricher.model_versions()) * (len(REAL_POSTS) + len(BAD_POSTS))
    assert counts["brand_mentions"] == len(real.brand_mentions) + len(bad.brand_mentions)
    assert counts["entities"] > 0
    relevant = con.execute(
        "SELECT count(*) FROM annotations WHERE task = 'relevance' AND label = 'relevant'").fetchone()[0]
    with_mentions = con.execute("SELECT count(DISTINCT (source, post_id)) FROM brand_mentions").fetchone()[0]
    assert relevant == with_mentions


class FailsOnOneClause:
    """A real sentiment model that raises on texts starting with `poison`, as a model bug on one
    odd clause would: per-brand sentiment must then fail for that post alone."""

    def __init__(self, model: SentimentModel, poison: str) -> None:
        self.model, self.poison = model, poison
        self.model_name, self.model_version = model.model_name, model.model_version

    @property
    def languages(self) -> tuple[str, ...]:
        return self.model.languages

    def predict(self, texts: list[str], lang: str) -> list[SentimentResult | None]:
        if any(text.startswith(self.poison) for text in texts):
            raise RuntimeError("model bug")
        return self.model.predict(texts, lang)


def test_a_failing_clause_costs_only_its_own_answer(demo_brands: list[Brand], caplog: pytest.LogCaptureFixture) -> None:
    model = FailsOnOneClause(SentimentModel(), "but Apple")
    enricher = Enricher(demo_brands, sentiment=model, ner_engine="spacy")
    posts = [
        PostText("x", "poisoned", "Amazon delivered the parcel a day early, which is great, but Apple support ignored my emails for weeks", "en"),
        PostText("x", "fine", "Amazon Prime Video keeps crashing on my TV and support is useless, but Xbox Live works perfectly every time", "en"),
    ]
    with caplog.at_level(logging.WARNING, logger="nlp.pipeline"):
        result = enricher.enrich(posts)
    assert any("retrying one by one" in r.message for r in caplog.records)
    assert any("skipped one text" in r.message for r in caplog.records)
    mentions = {(m.post_id, m.brand): m.sentiment for m in result.brand_mentions}
    model.poison = "\x00"  # the same model, now failing on nothing
    clean = enricher.enrich(posts)
    assert [(a.post_id, a.task, a.label) for a in result.annotations] == [(a.post_id, a.task, a.label) for a in clean.annotations]
    expected = {(m.post_id, m.brand): m.sentiment for m in clean.brand_mentions}
    # The clause the model failed on keeps the post's answer; every other mention gets its own.
    assert mentions.pop(("poisoned", "Apple")) == annotation(result, "poisoned", "sentiment").label
    expected.pop(("poisoned", "Apple"))
    assert mentions == expected and ("fine", "Xbox") in mentions
    assert mentions[("fine", "Prime")] != mentions[("fine", "Xbox")]


def test_models_stay_out_of_gc_only_inside_the_block() -> None:
    before = gc.get_freeze_count()
    with models_out_of_gc() as loaded:
        assert gc.get_freeze_count() == before  # nothing is frozen before the models are loaded
        loaded()
        frozen = gc.get_freeze_count()
        fresh = [[] for _ in range(10_000)]  # tracked objects that a second freeze would take in
        loaded()  # a second call freezes nothing more
        # Another thread (the session's Prefect server) may free frozen objects meanwhile, so the
        # count can fall; a second freeze would have raised it by the 10,000 fresh lists.
        assert frozen > before and gc.get_freeze_count() <= frozen
        del fresh
    assert gc.get_freeze_count() == 0
