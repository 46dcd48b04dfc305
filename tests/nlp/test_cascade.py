"""The sentiment cascade (student first, the fine-tuned e5 when unsure) and the text cache, on real EN/DE tweets."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from nlp.cascade import (
    THRESHOLDS_PATH,
    CascadeSentiment,
    choose_threshold,
    threshold_curve,
)
from nlp.e5_sentiment import FineTunedSentimentModel
from nlp.sentiment import SentimentModel, SentimentResult
from nlp.static_embed import StaticSentimentModel
from nlp.text import repost_key
from nlp.text_cache import CachedSentiment

SLICE = 80  # tweets per language: e5 runs on all of them once, so keep the slice small


class Recording:
    """A real model that records every batch it is asked about."""

    def __init__(self, model) -> None:
        self.model = model
        self.calls: list[list[str]] = []

    @property
    def model_version(self) -> str:
        return self.model.model_version

    @property
    def languages(self) -> tuple[str, ...]:
        return self.model.languages

    def predict(self, texts: list[str], lang: str) -> list[SentimentResult | None]:
        self.calls.append(list(texts))
        return self.model.predict(texts, lang)


@pytest.fixture(scope="module")
def student() -> StaticSentimentModel:
    return StaticSentimentModel()


@pytest.fixture(scope="module")
def e5() -> FineTunedSentimentModel:
    """The model the product's cascade sends unsure posts to, in float32: in bfloat16 a text's
    probabilities move in the third decimal with the batch it is encoded in."""
    return FineTunedSentimentModel(precision="fp32")


@pytest.fixture(scope="module")
def slices(en_tweets: list[tuple[str, str]], de_tweets: list[tuple[str, str]]) -> dict[str, list[str]]:
    return {"en": [t for _, t in en_tweets[:SLICE]], "de": [t for _, t in de_tweets[:SLICE]]}


@pytest.fixture(scope="module")
def e5_answers(e5: FineTunedSentimentModel, slices: dict[str, list[str]]) -> dict[str, list[SentimentResult | None]]:
    return {lang: e5.predict(texts, lang) for lang, texts in slices.items()}


@pytest.mark.parametrize("lang", ["en", "de"])
def test_cascade_routes_exactly_the_unsure_texts_to_e5(
    lang: str, student: StaticSentimentModel, e5: FineTunedSentimentModel,
    slices: dict[str, list[str]], e5_answers: dict[str, list[SentimentResult | None]],
) -> None:
    cascade = CascadeSentiment.from_operating_point("balanced", fast=student, accurate=Recording(e5))
    texts = slices[lang]
    fast = student.predict(texts, lang)
    cut = cascade.threshold(lang)
    unsure = [i for i, r in enumerate(fast) if r.score < cut]
    assert 0 < len(unsure) < len(texts)  # both models really decide some posts

    results = cascade.predict(texts, lang)
    assert cascade.accurate.calls == [[texts[i] for i in unsure]]
    assert cascade.routing.accurate[lang] == len(unsure)
    assert cascade.routing.fast[lang] == len(texts) - len(unsure)
    for i, result in enumerate(results):
        expected = e5_answers[lang][i] if i in unsure else fast[i]
        assert result.label == expected.label and result.score == pytest.approx(expected.score, abs=1e-5)


@pytest.mark.parametrize("lang", ["en", "de"])
def test_student_agrees_with_e5_more_when_confident(
    lang: str, student: StaticSentimentModel, slices: dict[str, list[str]],
    e5_answers: dict[str, list[SentimentResult | None]],
) -> None:
    cascade = CascadeSentiment.from_operating_point("balanced", fast=student)
    fast = student.predict(slices[lang], lang)
    agree = np.array([f.label == e.label for f, e in zip(fast, e5_answers[lang])])
    confident = np.array([f.score >= cascade.threshold(lang) for f in fast])
    assert agree[confident].mean() >= 0.7
    assert agree[confident].mean() > agree[~confident].mean()


def test_threshold_extremes(student: StaticSentimentModel, e5: FineTunedSentimentModel, slices: dict[str, list[str]],
                            e5_answers: dict[str, list[SentimentResult | None]]) -> None:
    texts = slices["de"][:20]
    never = CascadeSentiment(student, Recording(e5), threshold=0.0)
    assert [r.label for r in never.predict(texts, "de")] == [r.label for r in student.predict(texts, "de")]
    assert never.accurate.calls == []
    always = CascadeSentiment(student, e5, threshold=1.01)
    assert [r.label for r in always.predict(texts, "de")] == [r.label for r in e5_answers["de"][:20]]
    assert always.routing.accurate_share() == 1.0


def test_version_names_both_models_and_thresholds(student: StaticSentimentModel, e5: FineTunedSentimentModel) -> None:
    cascade = CascadeSentiment(student, e5, {"en": 0.8, "de": 0.75})
    assert cascade.model_version == f"cascade({student.model_version}|{e5.model_version}|t=de:0.75,en:0.80)"
    assert cascade.languages == ("en", "de")
    with pytest.raises(ValueError, match="operating point"):
        CascadeSentiment.from_operating_point("turbo")


def test_shipped_thresholds_were_chosen_for_the_shipped_accurate_model(
    e5: FineTunedSentimentModel, caplog: pytest.LogCaptureFixture
) -> None:
    assert json.loads(THRESHOLDS_PATH.read_text(encoding="utf-8"))["accurate_model"] == e5.model_version
    with caplog.at_level(logging.WARNING, logger="nlp.cascade"):
        CascadeSentiment.from_operating_point("balanced", accurate=e5)
        assert caplog.records == []
        CascadeSentiment.from_operating_point("balanced", accurate=SentimentModel())  # the frozen model
    assert "nlp.distill --thresholds-only" in caplog.text


def test_bad_input_and_unknown_language(student: StaticSentimentModel, e5: FineTunedSentimentModel) -> None:
    cascade = CascadeSentiment.from_operating_point("balanced", fast=student, accurate=e5)
    results = cascade.predict(["", "😡😡", "https://t.co/x", "Zug " * 250_000], "de")
    assert results[0] is None and all(r is not None for r in results[1:])
    assert cascade.predict(["Habari za asubuhi rafiki"], "sw") == [None]


def test_threshold_choice_uses_the_cheapest_good_point() -> None:
    rng = np.random.default_rng(13)
    labels = rng.integers(0, 3, 300)
    accurate = labels.copy()  # a perfect accurate model: routing more always helps
    fast_probs = rng.dirichlet([1, 1, 1], 300)
    curve = threshold_curve(fast_probs, accurate, labels)
    assert curve[-1]["accurate_share"] == 1.0 and curve[-1]["score"] == 1.0
    shares = [row["accurate_share"] for row in curve]
    assert shares == sorted(shares)
    assert choose_threshold(curve, tolerance=0.0)["score"] == 1.0
    loose = choose_threshold(curve, tolerance=0.2)
    assert loose["accurate_share"] < 1.0 and loose["score"] >= 0.8


def test_cache_classifies_each_distinct_text_once(student: StaticSentimentModel, slices: dict[str, list[str]]) -> None:
    recording = Recording(student)
    cache = CachedSentiment(recording)
    texts = slices["de"][:10]
    batch = texts + texts[:5] + ["RT @DB_Bahn: " + texts[0]]
    results = cache.predict(batch, "de")
    assert len(recording.calls) == 1 and len(recording.calls[0]) == 10
    assert cache.counts.misses == 10 and cache.counts.batch_duplicates == 6
    plain = student.predict(texts, "de")
    assert [r.label for r in results] == [r.label for r in plain + plain[:5] + plain[:1]]

    again = cache.predict(texts[:3] + slices["de"][10:12], "de")
    assert cache.counts.hits == 3 and recording.calls[-1] == [repost_key(t) for t in slices["de"][10:12]]
    assert [r.label for r in again[:3]] == [r.label for r in plain[:3]]
    assert cache.model_version == student.model_version


def test_cache_is_bounded_and_keyed_per_language(student: StaticSentimentModel, slices: dict[str, list[str]]) -> None:
    cache = CachedSentiment(student, max_entries=5)
    cache.predict(slices["en"][:8], "en")
    assert len(cache) == 5
    cache.predict(slices["en"][:1], "de")  # same text, other language: not a hit
    assert cache.counts.hits == 0
    assert cache.predict(["", "Zug " * 250_000], "de")[0] is None
    with pytest.raises(ValueError):
        CachedSentiment(student, max_entries=-1)


def test_build_sentiment_model_modes() -> None:
    from nlp.cascade import MODES, build_sentiment_model

    assert isinstance(build_sentiment_model("e5"), SentimentModel)
    assert isinstance(build_sentiment_model("student"), StaticSentimentModel)
    cascade = build_sentiment_model("cascade:fast")
    assert isinstance(cascade, CascadeSentiment) and cascade.model_name == "sentiment-cascade"
    cached = build_sentiment_model("cascade:balanced", cache_entries=10)
    assert isinstance(cached, CachedSentiment) and cached.max_entries == 10
    assert cached.model_name == "sentiment-cascade" and "cascade(" in cached.model_version
    assert len(MODES) == 7 and MODES[0] == "finetuned"  # the default; tests/nlp/test_e5_sentiment.py covers it
    with pytest.raises(ValueError, match="sentiment mode"):
        build_sentiment_model("bert")
