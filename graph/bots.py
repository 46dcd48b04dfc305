"""A metadata-only bot/spam score per account, in the spirit of BotometerLite.

Each signal is mapped to [0, 1] (1 = looks automated) and the score is the mean of the
signals that are known for the account, so a source that reports no follower counts is
judged on what it does report. Thresholds, all documented in docs/influence.md:

- young account: 1 below 30 days old, 0 from one year on, log-linear between.
- posting rate: posts per day; 0 up to 20/day, 1 from 200/day, log-linear between.
- duplicate text: share of the account's posts whose text also appears in another of its posts.
- follower/following: 0 while following ≤ 10 × followers, 1 at 1,000 × and beyond (log scale).
- timing: from the burstiness B = (σ − μ)/(σ + μ) of the gaps between the account's
  interactions (Goh & Barabási 2008): clockwork posting (B near −1) or machine-gun bursts
  (B above 0.9) look automated; human rhythms sit in between. Needs ≥ 10 interactions.
"""

from __future__ import annotations

import math

import numpy as np

SIGNALS: tuple[str, ...] = ("young_account", "posting_rate", "duplicate_text", "follower_ratio", "timing")
LIKELY_BOT = 0.5
MIN_TIMED_EVENTS = 10


def _log_ramp(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """Return 0 at `low`, 1 at `high`, linear in log(value) between; NaN stays NaN."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ramp = (np.log(np.maximum(values, 1e-12)) - math.log(low)) / (math.log(high) - math.log(low))
    return np.where(np.isnan(values), np.nan, np.clip(ramp, 0.0, 1.0))


def bot_signals(
    *,
    age_days: np.ndarray,
    posts_per_day: np.ndarray,
    duplicate_share: np.ndarray,
    followers: np.ndarray,
    following: np.ndarray,
    burstiness: np.ndarray,
) -> dict[str, np.ndarray]:
    """Return each signal in [0, 1] per account, NaN where the input is unknown (NaN)."""
    with np.errstate(invalid="ignore"):
        following_per_follower = (following + 1.0) / (followers + 1.0)
        timing = np.maximum(np.clip(-burstiness, 0.0, 1.0), np.clip((burstiness - 0.9) / 0.1, 0.0, 1.0))
    return {
        "young_account": 1.0 - _log_ramp(age_days, 30.0, 365.0),
        "posting_rate": _log_ramp(posts_per_day, 20.0, 200.0),
        "duplicate_text": np.clip(duplicate_share, 0.0, 1.0),
        "follower_ratio": _log_ramp(following_per_follower, 10.0, 1000.0),
        "timing": np.where(np.isnan(burstiness), np.nan, timing),
    }


def bot_score(signals: dict[str, np.ndarray]) -> np.ndarray:
    """Return the mean of the known signals per account (0 when none is known)."""
    stacked = np.vstack([signals[name] for name in SIGNALS])
    known = ~np.isnan(stacked)
    total = np.where(known, stacked, 0.0).sum(axis=0)
    count = known.sum(axis=0)
    return np.divide(total, count, out=np.zeros(stacked.shape[1]), where=count > 0)


def burstiness(actor: np.ndarray, micros: np.ndarray, n_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Return (burstiness per node, events per node) of the times each node acted.

    NaN burstiness where a node has fewer than MIN_TIMED_EVENTS timed events.
    """
    timed = ~np.isnan(micros)
    actor, micros = actor[timed], micros[timed]
    events = np.bincount(actor, minlength=n_nodes)
    result = np.full(n_nodes, np.nan)
    if actor.size < 2:
        return result, events
    # One int64 key (actor, then rank in time) sorts faster than a two-key lexsort on millions of rows.
    time_rank = np.empty(micros.size, dtype=np.int64)
    time_rank[np.argsort(micros)] = np.arange(micros.size)
    order = np.argsort(actor.astype(np.int64) * micros.size + time_rank)
    actor, micros = actor[order], micros[order]
    same = actor[1:] == actor[:-1]
    gap_node = actor[1:][same]
    gaps = np.diff(micros)[same] / 1e6
    n_gaps = np.bincount(gap_node, minlength=n_nodes).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.bincount(gap_node, weights=gaps, minlength=n_nodes) / n_gaps
        var = np.bincount(gap_node, weights=gaps**2, minlength=n_nodes) / n_gaps - mean**2
        sigma = np.sqrt(np.maximum(var, 0.0))
        value = (sigma - mean) / (sigma + mean)
    enough = (events >= MIN_TIMED_EVENTS) & (sigma + mean > 0)
    result[enough] = value[enough]
    return result, events


def explain_bot(score: float, signals: dict[str, float]) -> str:
    """Return a plain sentence naming the strongest automation signals of one account."""
    strong = sorted(((value, name) for name, value in signals.items() if not math.isnan(value) and value >= 0.5), reverse=True)
    words = {
        "young_account": "a very new account",
        "posting_rate": "posts at a machine-like rate",
        "duplicate_text": "repeats the same text",
        "follower_ratio": "follows far more accounts than follow it",
        "timing": "posts with clockwork or burst timing",
    }
    if not strong:
        return "No sign of automation in the metadata."
    verdict = "Likely automated or spam" if score >= LIKELY_BOT else "Some signs of automation"
    return f"{verdict}: " + ", ".join(words[name] for _, name in strong) + "."
