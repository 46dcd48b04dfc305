"""bench/sentiment_stacking.py's neighbour vote: a tweet never votes for itself, votes are
class-balanced, and the nearest neighbours win."""

from __future__ import annotations

import numpy as np

import bench.sentiment_stacking as stacking


def unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_a_bank_row_queried_as_itself_is_left_out(monkeypatch) -> None:
    monkeypatch.setattr(stacking, "NEIGHBOURS", 1)
    # Two tight pairs of points; each point's only other close point has the other label in pair A.
    bank = unit(np.array([[1.0, 0.0], [0.99, 0.01], [0.0, 1.0], [0.01, 0.99]]))
    labels = np.array([0, 2, 1, 1])
    with_self = stacking.neighbour_votes(bank, labels, bank)
    left_out = stacking.neighbour_votes(bank, labels, bank, bank_offset=0)
    assert list(with_self.argmax(1)) == [0, 2, 1, 1]  # each point finds itself
    assert list(left_out.argmax(1)) == [2, 0, 1, 1]  # the pair's other point decides


def test_votes_are_balanced_against_the_banks_prior(monkeypatch) -> None:
    monkeypatch.setattr(stacking, "NEIGHBOURS", 4)
    rng = np.random.default_rng(0)
    bank = unit(rng.normal(size=(40, 8)))
    labels = np.array([1] * 36 + [0, 0, 2, 2])  # neutral is 90% of the bank
    query = unit(rng.normal(size=(200, 8)))
    votes = np.exp(stacking.neighbour_votes(bank, labels, query))
    assert np.allclose(votes.sum(1), 1.0, atol=1e-5)
    # Four neighbours drawn from a 90%-neutral bank mostly are neutral; divided by the prior,
    # neutral wins only where it has a clear majority.
    assert (votes.argmax(1) == 1).mean() < 0.9


def test_surface_features_read_the_text() -> None:
    features = stacking.surface_features(["RT @user LOVE this!! http://t.co/x #win 😀", "plain words"])
    assert features.shape == (2, 11)
    links, handles, hashtags, _, bang, question, emoji, retweet, capitals, digits, quotes = features[0]
    assert (links, handles, hashtags, bang, question, emoji, retweet) == (1, 1, 1, 1, 0, 1, 1)
    assert capitals > 0 and digits == 0 and quotes == 0
    assert not features[1][[0, 1, 2, 4, 5, 6, 7]].any()
