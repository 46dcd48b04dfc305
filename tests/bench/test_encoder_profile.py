"""bench/encoder_profile.py ranks real profiler output by own CPU time and times functions without
changing what they return, putting the originals back afterwards."""

from __future__ import annotations

import math
import types

import pytest

from bench.encoder_profile import op_shares, padding_by_call_size, timed_functions

torch = pytest.importorskip("torch")


def test_op_shares_rank_a_real_profile() -> None:
    from torch.profiler import ProfilerActivity, profile

    big, small = torch.randn(512, 512), torch.randn(8, 8)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(5):
            big @ big
        small + small
    averages = prof.key_averages()
    every = op_shares(averages, top=1000)
    assert math.isclose(sum(op["share"] for op in every), 1.0, abs_tol=0.01)
    assert [op["seconds"] for op in every] == sorted((op["seconds"] for op in every), reverse=True)
    top = op_shares(averages, top=1)
    assert len(top) == 1 and top[0]["op"] in {"aten::mm", "aten::matmul"}
    assert top[0]["calls"] == 5


def test_timed_functions_time_calls_and_put_the_originals_back() -> None:
    def slow_sum(values: list[int]) -> int:
        return sum(values)

    holder = types.SimpleNamespace(slow_sum=slow_sum)
    with timed_functions([(holder, "slow_sum", "summing")]) as seconds:
        assert holder.slow_sum([1, 2, 3]) == 6
        assert holder.slow_sum([4]) == 4
        assert holder.slow_sum is not slow_sum
    assert holder.slow_sum is slow_sum
    assert set(seconds) == {"summing"} and seconds["summing"] > 0


def test_padding_counts_each_calls_batches_per_language() -> None:
    lengths = {"en": [5, 50, 5, 50], "de": [7, 7, 7, 7]}
    counts = padding_by_call_size(lengths, (2, 4, 8))
    # Calls of 2 posts: one text per language a call, each its own batch, no padding.
    assert counts["2"] == {"batches": 8, "padded_pieces": 138, "real_pieces": 138}
    # Calls of 4: two texts per language; a short and a long English text share a batch padded to 50.
    assert counts["4"] == {"batches": 4, "padded_pieces": 2 * 100 + 2 * 14, "real_pieces": 138}
    # Calls of 8: each language's four texts in one batch, padded to its longest.
    assert counts["8"] == {"batches": 2, "padded_pieces": 4 * 50 + 4 * 7, "real_pieces": 138}
