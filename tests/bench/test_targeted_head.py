"""bench/targeted_head.py pools the right encoder rows for a target: its own pieces, a window around
them, and the word's pieces where normalising changed the word (a handle)."""

from __future__ import annotations

import numpy as np

from bench.targeted_head import pooled_spans


def rows_used(pooled: np.ndarray) -> float:
    return float(pooled[0])


def test_target_and_window_rows() -> None:
    # "Die Bahn war spät": pieces start at 0 ("▁Die"), 4 ("▁Bahn"), 9 ("▁war"), 13 ("▁sp"), 15 ("ät").
    starts = [0, 4, 9, 13, 15]
    states = np.arange(len(starts) + 2, dtype=float)[:, None].repeat(2, axis=1)  # row i holds i; row 0 is <s>
    target, window = pooled_spans(states, starts, (4, 8), window=1)
    assert rows_used(target) == 2.0  # piece 1 ("▁Bahn") is row 2
    assert rows_used(window) == np.mean([1, 2, 3])
    target, window = pooled_spans(states, starts, (13, 17), window=1)
    assert rows_used(target) == np.mean([4, 5])  # both pieces of "spät"
    assert rows_used(window) == np.mean([3, 4, 5])  # the window stops at the last piece, before </s> (row 6)


def test_a_target_inside_a_normalised_word_takes_the_word() -> None:
    # "@DB_Bahn hilft": the handle became "@user", whose pieces all start at 0; the target "Bahn" (4..8)
    # starts inside the word, where no piece starts.
    starts = [0, 0, 0, 9]
    states = np.arange(len(starts) + 2, dtype=float)[:, None]
    target, _ = pooled_spans(states, starts, (4, 8), window=0)
    assert rows_used(target) == np.mean([1, 2, 3])  # the three pieces of "@user", not the next word's
