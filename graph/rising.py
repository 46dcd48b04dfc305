"""Rising influencers: accounts whose engagement today stands out against their own history.

Scores are scaled to the day's top account, so a score moves when *another* account grows:
they are not comparable from one ranking to the next. The rise is therefore measured on the
account's own, unscaled engagement (`in_degree`: decayed, kind-weighted interactions received,
stored with every ranking), on a log scale so that "three times the usual" means the same
for a small and a large account. For an account with at least `min_history` earlier rankings::

    x    = log(1 + in_degree)
    rise = (x_now − median(x_previous)) / max(1.4826 · MAD(x_previous), LOG_FLOOR)

It is rising when rise ≥ `threshold`, today's engagement beats every earlier one, and at least
MIN_ENGAGEMENT weighted interactions support it (two replies are not a trend). LOG_FLOOR =
log(1.5) keeps a flat history from turning noise into a rise: with it, a rise of 3 needs at
least 1.5³ ≈ 3.4 times the usual engagement. A history without in_degree falls back to the
score itself (the same formula on log(1 + 100·score)). Accounts new to the graph have no
history to rise against and are not listed here (they show up in the ranking).
"""

from __future__ import annotations

import math
from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

HISTORY_COLUMNS = ("as_of", "source", "account_id", "score")
MIN_HISTORY = 3
THRESHOLD = 3.0
LOG_FLOOR = math.log(1.5)
MIN_ENGAGEMENT = 5.0
SEPARATOR = "\x1f"


def rise_scores(
    sources: list[str],
    accounts: list[str],
    scores: np.ndarray,
    as_of: datetime,
    history: pa.Table,
    min_history: int = MIN_HISTORY,
    max_points: int = 30,
    engagement: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Return per account: rise, previous median, previous max and history length (NaN rise when too short).

    With `engagement` (today's in_degree) and an `in_degree` column in `history` the rise is
    measured on engagement; otherwise on the score. Medians and maxima are in the measured unit.
    """
    missing = [c for c in HISTORY_COLUMNS if c not in history.column_names]
    if missing:
        raise ValueError(f"history table lacks column(s) {', '.join(missing)}")
    n = len(accounts)
    result = {
        "rise": np.full(n, np.nan),
        "previous_median": np.full(n, np.nan),
        "previous_max": np.full(n, np.nan),
        "history_points": np.zeros(n, dtype=np.int64),
        "measured_now": np.asarray(engagement if engagement is not None else scores, dtype=np.float64),
    }
    if n == 0 or history.num_rows == 0:
        return result
    use_engagement = engagement is not None and "in_degree" in history.column_names
    if not use_engagement:
        result["measured_now"] = np.asarray(scores, dtype=np.float64)
    moment = pa.scalar(as_of, pa.timestamp("us", tz="UTC"))
    earlier = history.filter(pc.less(pc.cast(history["as_of"], pa.timestamp("us", tz="UTC")), moment))
    if earlier.num_rows == 0:
        return result
    keys = pa.array([f"{s}{SEPARATOR}{a}" for s, a in zip(sources, accounts)])
    past_keys = pc.binary_join_element_wise(earlier["source"], earlier["account_id"].cast(pa.string()), SEPARATOR)
    node = pc.fill_null(pc.index_in(past_keys, value_set=keys), -1).to_numpy(zero_copy_only=False).astype(np.int64)
    known = node >= 0  # accounts not in today's ranking have no rise to measure
    when = pc.cast(earlier["as_of"], pa.timestamp("us", tz="UTC")).cast(pa.int64()).to_numpy(zero_copy_only=False)[known]
    column = "in_degree" if use_engagement else "score"
    value = pc.fill_null(earlier[column].cast(pa.float64()), 0.0).to_numpy(zero_copy_only=False)[known]
    node = node[known]
    now = _log_scale(result["measured_now"], use_engagement)
    # Newest points first per account, then keep `max_points` of them: the recent past is the baseline.
    order = np.lexsort((-when, node))
    node, value = node[order], value[order]
    starts = np.flatnonzero(np.r_[True, node[1:] != node[:-1]])
    ends = np.r_[starts[1:], node.size]
    for start, end in zip(starts.tolist(), ends.tolist()):
        account = int(node[start])
        past = value[start : min(end, start + max_points)]
        result["history_points"][account] = past.size
        result["previous_median"][account] = float(np.median(past))
        result["previous_max"][account] = float(past.max())
        if past.size >= min_history:
            logged = _log_scale(past, use_engagement)
            median = float(np.median(logged))
            spread = max(1.4826 * float(np.median(np.abs(logged - median))), LOG_FLOOR)
            result["rise"][account] = (now[account] - median) / spread
    return result


def _log_scale(values: np.ndarray, engagement: bool) -> np.ndarray:
    """Return log(1 + engagement), or log(1 + 100·score) for scores in [0, ~2]."""
    return np.log1p(values) if engagement else np.log1p(100.0 * values)
