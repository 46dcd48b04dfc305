"""The NB-LR n-gram recipe (German): log-count ratios folded into the coefficients, so inference is unchanged."""

from __future__ import annotations

import numpy as np
from nlp.sentiment import LABELS, ngram_counts, tfidf
from nlp.sentiment_data import LabelledTexts
from nlp.train_sentiment import _fit_lexical, _log_count_ratios


def as_labelled(rows: list[tuple[str, str]]) -> LabelledTexts:
    return LabelledTexts("de_fixture", [t for _, t in rows], np.array([LABELS.index(label) for label, _ in rows]), "de")


def test_log_count_ratios_favour_the_class_a_feature_occurs_in(de_tweets: list[tuple[str, str]]) -> None:
    data = as_labelled(de_tweets)
    counts = ngram_counts(data.texts)
    ratios = _log_count_ratios(counts, data.labels)
    assert ratios.shape == (3, counts.shape[1]) and np.isfinite(ratios).all()
    only_in = {}
    present = (counts > 0).toarray()
    for label in range(3):
        mask = present[data.labels == label].any(axis=0) & ~present[data.labels != label].any(axis=0)
        only_in[label] = np.flatnonzero(mask)
        assert len(only_in[label]) > 0
        assert (ratios[label, only_in[label]] > 0).all()  # seen only in this class: ratio above 1


def test_nb_recipe_learns_from_real_german_tweets(de_tweets: list[tuple[str, str]]) -> None:
    data = as_labelled(de_tweets[:200])
    coef, intercept, idf = _fit_lexical([data], [1.0], seed=13, c_value=1.0, nb=True)
    assert coef.shape == (3, idf.shape[0]) and intercept.shape == (3,)
    held_out = [t for _, t in de_tweets[200:]]
    features = tfidf(ngram_counts(held_out), idf)
    folded = np.asarray(features @ coef.T) + intercept
    # The recipe learns something: on the 100 held-out real tweets it beats always-the-majority.
    gold = np.array([LABELS.index(label) for label, _ in de_tweets[200:]])
    assert (folded.argmax(axis=1) == gold).mean() > np.bincount(gold).max() / len(gold)
