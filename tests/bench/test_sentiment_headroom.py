"""The bias bound in bench/sentiment_headroom.py: its fast scores are scikit-learn's, and its search
finds a bias that undoes a known shift."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score, recall_score

from bench.sentiment_headroom import best_biases, macro_score


@pytest.mark.parametrize("metric", ["macro_recall", "macro_f1"])
def test_macro_score_is_scikit_learns(metric: str) -> None:
    rng = np.random.default_rng(0)
    for size in (200, 200, 30, 5):  # at 5 rows a class can be missing from the labels or the guesses
        labels, predicted = rng.integers(0, 3, size), rng.integers(0, 3, size)
        scorer = recall_score if metric == "macro_recall" else f1_score
        expected = scorer(labels, predicted, labels=[0, 1, 2], average="macro", zero_division=0)
        assert macro_score(labels, predicted, metric) == pytest.approx(expected, abs=1e-12)


def test_the_search_undoes_a_shift_of_the_positive_class() -> None:
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, 600)
    log_probs = np.log(np.full((600, 3), 0.2))
    log_probs[np.arange(600), labels] = np.log(0.6)  # a perfect model ...
    log_probs[:, 2] += 1.5  # ... whose positive class is pushed up until it wins every post
    assert macro_score(labels, log_probs.argmax(axis=1), "macro_recall") == pytest.approx(1 / 3)
    score, bias = best_biases(log_probs, labels, "macro_recall")
    assert score == 1.0
    # A perfect answer needs the positive bias under every other class's by more than 1.5 - ln 3 and
    # by less than 1.5 + ln 3, and the negative within ln 3 of neutral's (which stays 0).
    negative, neutral, positive = bias
    assert neutral == 0.0 and abs(negative) < np.log(3)
    for other in (negative, neutral):
        assert np.log(3) - 1.5 > positive - other > -1.5 - np.log(3)
