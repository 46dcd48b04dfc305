"""Rising influencers: accounts whose score today stands out against their own earlier scores.

For an account with at least `min_history` earlier rankings (rows of `influence_scores` with
an older as_of), the rise is a robust z-score of today's score against those::

    rise = (score_now − median(previous)) / max(1.4826 · MAD(previous), 0.25 · median(previous), 0.01)

The floor keeps an account with a perfectly flat history from "rising" on noise. It is rising
when rise ≥ `threshold` and today's score beats every earlier one. Accounts new to the graph
have no history to rise against and are not listed here (they show up in the ranking).
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

HISTORY_COLUMNS = ("as_of", "source", "account_id", "score")
MIN_HISTORY = 3
THRESHOLD = 3.0
# The spread never counts as less than this share of the usual score, so a flat history does not turn noise into a rise.
RELATIVE_FLOOR = 0.25
SEPARATOR = "\x1f"


def rise_scores(
    sources: list[str],
    accounts: list[str],
    scores: np.ndarray,
    as_of: datetime,
    history: pa.Table,
    min_history: int = MIN_HISTORY,
    max_points: int = 30,
) -> dict[str, np.ndarray]:
    """Return per account: rise, previous median, previous max and history length (NaN rise when too short)."""
    missing = [c for c in HISTORY_COLUMNS if c not in history.column_names]
    if missing:
        raise ValueError(f"history table lacks column(s) {', '.join(missing)}")
    n = len(accounts)
    result = {
        "rise": np.full(n, np.nan),
        "previous_median": np.full(n, np.nan),
        "previous_max": np.full(n, np.nan),
        "history_points": np.zeros(n, dtype=np.int64),
    }
    if n == 0 or history.num_rows == 0:
        return result
    moment = pa.scalar(as_of, pa.timestamp("us", tz="UTC"))
    earlier = history.filter(pc.less(pc.cast(history["as_of"], pa.timestamp("us", tz="UTC")), moment))
    if earlier.num_rows == 0:
        return result
    keys = pa.array([f"{s}{SEPARATOR}{a}" for s, a in zip(sources, accounts)])
    past_keys = pc.binary_join_element_wise(earlier["source"], earlier["account_id"].cast(pa.string()), SEPARATOR)
    node = pc.fill_null(pc.index_in(past_keys, value_set=keys), -1).to_numpy(zero_copy_only=False).astype(np.int64)
    known = node >= 0  # accounts not in today's ranking have no rise to measure
    when = pc.cast(earlier["as_of"], pa.timestamp("us", tz="UTC")).cast(pa.int64()).to_numpy(zero_copy_only=False)[known]
    value = earlier["score"].to_numpy(zero_copy_only=False).astype(np.float64)[known]
    node = node[known]
    # Newest points first per account, then keep `max_points` of them: the recent past is the baseline.
    order = np.lexsort((-when, node))
    node, value = node[order], value[order]
    starts = np.flatnonzero(np.r_[True, node[1:] != node[:-1]])
    ends = np.r_[starts[1:], node.size]
    for start, end in zip(starts.tolist(), ends.tolist()):
        account = int(node[start])
        past = value[start : min(end, start + max_points)]
        result["history_points"][account] = past.size
        median = float(np.median(past))
        result["previous_median"][account] = median
        result["previous_max"][account] = float(past.max())
        if past.size >= min_history:
            spread = max(1.4826 * float(np.median(np.abs(past - median))), RELATIVE_FLOOR * median, 0.01)
            result["rise"][account] = (scores[account] - median) / spread
    return result
