"""The fine-tuning recipe on real EN and DE tweets: runs are reproducible from their seed, and the
shipped model is the soup of its runs, one model at inference."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from nlp.e5_sentiment import pooled_logits
from nlp.e5_torch import adapted_encoder, soup_arrays
from nlp.sentiment import LABELS
from nlp.train_e5_sentiment import BATCH, WARMUP_STEPS, fine_tune

STEPS = 3  # the learning rate warms up from 0, so the first step moves nothing


@pytest.fixture(scope="module")
def rows(en_tweets: list[tuple[str, str]], de_tweets: list[tuple[str, str]]) -> tuple[list[str], np.ndarray, np.ndarray]:
    chosen = en_tweets[:32] + de_tweets[:32]
    texts = [text for _, text in chosen]
    return texts, np.array([LABELS.index(label) for label, _ in chosen]), np.ones(len(chosen))


@pytest.fixture(scope="module")
def runs(rows: tuple[list[str], np.ndarray, np.ndarray]) -> dict[int, dict[str, np.ndarray]]:
    texts, labels, weights = rows
    assert STEPS < WARMUP_STEPS
    return {seed: fine_tune(texts, labels, weights, seed=seed, epochs=STEPS * BATCH / len(texts)) for seed in (13, 14)}


def test_a_run_is_reproduced_by_its_seed(rows: tuple[list[str], np.ndarray, np.ndarray], runs: dict[int, dict[str, np.ndarray]]) -> None:
    texts, labels, weights = rows
    again = fine_tune(texts, labels, weights, seed=13, epochs=STEPS * BATCH / len(texts))
    first, other = runs[13], runs[14]
    assert first.keys() == again.keys() and all(np.array_equal(first[k], again[k]) for k in first)
    assert not np.array_equal(first["layers.0.q.lora_a"], other["layers.0.q.lora_a"])
    assert any(np.abs(first[k]).max() > 0 for k in first if k.endswith(".lora_b"))  # the steps moved the adapters


def test_the_soup_of_runs_is_one_model_of_the_summed_rank(
    rows: tuple[list[str], np.ndarray, np.ndarray], runs: dict[int, dict[str, np.ndarray]],
) -> None:
    texts = rows[0]
    soup = soup_arrays([runs[13], runs[14]])
    assert int(soup["rank"]) == 2 * int(runs[13]["rank"])
    logits = [pooled_logits(adapted_encoder(model), texts) for model in (runs[13], runs[14], soup)]
    assert all(part.shape == (len(texts), len(LABELS)) and np.isfinite(part).all() for part in logits)
    # Near a shared start the soup answers about as the runs' average does, and like neither run.
    gap = np.abs(logits[0] - logits[1]).mean()
    assert gap > 0
    assert np.abs(logits[2] - (logits[0] + logits[1]) / 2).mean() < 0.25 * gap
