"""[nlp] model_scope = "brand_posts": sentiment and entities only for posts that name a tracked
brand, the same answers for those posts, and a stored state that follows the brand list."""

from __future__ import annotations

import json
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from nlp.brands import BrandMatcher
from nlp.intent import MODEL_NAME, IntentModel
from nlp.pipeline import Enricher, build_enricher
from nlp.records import PostText
from resonanz.settings import Brand, NlpSettings
from warehouse.db import open_warehouse
from warehouse.stages import posts_to_enrich, save_enrichment

SAMPLE = Path(__file__).parents[2] / "resonanz" / "sample"


def sample_posts(stream: str, n: int, page: int = 1) -> list[PostText]:
    """The first `n` real posts of a page of a bundled sample stream (see its PROVENANCE.md)."""
    rows = json.loads((SAMPLE / stream / f"page-{page:04d}.json").read_text(encoding="utf-8"))["data"]
    return [PostText(stream, row["id"], row["text"], None) for row in rows[:n]]


@pytest.fixture(scope="module")
def posts(de_tweets: list[tuple[str, str]]) -> list[PostText]:
    # Customer-support tweets (EN), Bahn tweets (DE) and general German tweets (UMSAB).
    general = [PostText("umsab_de", f"de{i}", text, None) for i, (_, text) in enumerate(de_tweets[:20])]
    return sample_posts("x_twcs_en", 60, page=2) + sample_posts("x_germeval_db_de", 20) + general


@pytest.fixture(scope="module")
def scoped(demo_brands: list[Brand]) -> Enricher:
    return Enricher(demo_brands, model_scope="brand_posts")


def by_post(rows: list, task: str | None = None) -> dict[str, list]:
    out: dict[str, list] = {}
    for row in rows:
        if task is None or row.task == task:
            out.setdefault(row.post_id, []).append(row)
    return out


def test_only_brand_posts_get_sentiment_and_entities(enricher: Enricher, scoped: Enricher, posts: list[PostText]) -> None:
    full, brand_only = enricher.enrich(posts), scoped.enrich(posts)
    relevant = {a.post_id for a in full.annotations if a.task == "relevance" and a.label == "relevant"}
    langs = {a.post_id: a.label for a in full.annotations if a.task == "language"}
    # Both languages have posts on each side of the line (measured: 30 of the 100 name a brand).
    assert {langs[p] for p in relevant} >= {"en", "de"}
    assert {langs[p.post_id] for p in posts if p.post_id not in relevant} >= {"en", "de"}

    full_sentiment, scoped_sentiment = by_post(full.annotations, "sentiment"), by_post(brand_only.annotations, "sentiment")
    for post in posts:
        mine, theirs = scoped_sentiment[post.post_id][0], full_sentiment[post.post_id][0]
        if post.post_id in relevant:
            assert (mine.label, mine.score) == pytest.approx((theirs.label, theirs.score), abs=0.02)
        else:
            assert mine.label is None and mine.score is None
    spans = by_post(brand_only.entities)
    assert set(spans) <= relevant
    assert spans, "brand posts keep their entities"
    # Language, relevance and brand mentions cover every post either way, and so does intent: from
    # the n-gram weights under this scope (the encoder does not read every post), so its answers
    # are the n-gram model's where the default reads the sentiment pass's states as well.
    for task in ("language", "relevance"):
        assert [(a.post_id, a.label) for a in brand_only.annotations if a.task == task] == \
               [(a.post_id, a.label) for a in full.annotations if a.task == task]
    scoped_intent = [a for a in brand_only.annotations if a.task == "intent"]
    assert [a.post_id for a in scoped_intent] == [a.post_id for a in full.annotations if a.task == "intent"]
    ngrams = IntentModel()
    for post, row in zip(posts, scoped_intent):
        expected = ngrams.predict([post.text], langs[post.post_id])[0] if langs[post.post_id] in ("en", "de") else None
        assert row.label == (expected.label if expected else None) and row.model_name == MODEL_NAME
    assert [(m.post_id, m.brand, m.sentiment) for m in brand_only.brand_mentions] == \
           [(m.post_id, m.brand, m.sentiment) for m in full.brand_mentions]


def test_the_scope_and_the_brand_list_are_part_of_the_versions(enricher: Enricher, scoped: Enricher,
                                                               demo_brands: list[Brand]) -> None:
    full, brand_only = enricher.model_versions(), scoped.model_versions()
    assert {task for task in full if full[task] != brand_only[task]} == {"sentiment", "entities", "intent"}
    fewer = Enricher(demo_brands[:3], model_scope="brand_posts").model_versions()
    assert fewer["sentiment"] != brand_only["sentiment"] and fewer["entities"] != brand_only["entities"]
    with pytest.raises(ValueError, match="model_scope must be one of all_posts, brand_posts"):
        Enricher(demo_brands, model_scope="some_posts")
    with pytest.raises(ValidationError):
        NlpSettings(model_scope="some_posts")
    assert build_enricher(demo_brands, NlpSettings(model_scope="brand_posts")).model_versions() == brand_only


def test_a_post_that_names_a_newly_tracked_brand_is_read_again(tmp_path: Path, demo_brands: list[Brand]) -> None:
    posts = sample_posts("x_twcs_en", 60, page=2)
    newly = "PlayStation"  # named in 7 of these posts
    without = [b for b in demo_brands if newly not in (b.name, b.owner)]
    before, after = Enricher(without, model_scope="brand_posts"), Enricher(demo_brands, model_scope="brand_posts")
    newly_posts = {p.post_id for p in posts if BrandMatcher(demo_brands).find(p.text) and not BrandMatcher(without).find(p.text)}
    with closing(open_warehouse(tmp_path / "w.duckdb")) as con:
        for post in posts:
            con.execute("INSERT INTO posts (source, post_id, author_id, text, loaded_at) VALUES (?, ?, 'a', ?, ?)",
                        [post.source, post.post_id, post.text, datetime(2026, 1, 1, tzinfo=UTC)])

        def run(enricher: Enricher) -> int:
            todo = posts_to_enrich(con, enricher.model_versions()).to_pylist()
            batch = [PostText(r["source"], r["post_id"], r["text"], r["lang_hint"]) for r in todo]
            if batch:
                result = enricher.enrich(batch)
                save_enrichment(con, [(p.source, p.post_id) for p in batch], result.annotations, result.entities,
                                result.brand_mentions)
            return len(batch)

        def judged() -> set[str]:
            rows = con.execute("SELECT post_id FROM annotations WHERE task = 'sentiment' AND label IS NOT NULL").fetchall()
            return {row[0] for row in rows}

        assert run(before) == len(posts)
        assert newly_posts and not newly_posts & judged()
        assert run(after) == len(posts)  # the brand list is part of the version: every post is looked at again
        assert newly_posts <= judged()
        assert run(after) == 0  # and then nothing is left to do
        duplicates = con.execute(
            "SELECT count(*) FROM (SELECT post_id, task FROM annotations GROUP BY ALL HAVING count(*) > 1)").fetchone()[0]
        assert duplicates == 0
