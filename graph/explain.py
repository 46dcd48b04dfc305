"""Plain-language, one-line reasons for an influence rank."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

from connectors.records import INTERACTION_KINDS

_VERBS = {"reply": "replied to", "repost": "reposted", "quote": "quoted", "mention": "mentioned", "link": "linked to"}
_MOSTLY = {"reply": "replies", "repost": "reposts", "quote": "quotes", "mention": "mentions", "link": "links"}


def explain(
    *,
    handle: str | None,
    kind_counts: Sequence[int],  # interactions received, per INTERACTION_KINDS entry
    reach: int,
    brand_reach: int,
    has_brand_signal: bool,
    sentiment_counts: tuple[int, int, int],
    out_accounts: int,
    pagerank_rank: int,
    n_accounts: int,
    followers: int | None,
) -> str:
    """Return one sentence naming the figures behind an account's rank."""
    parts = [_engagement(kind_counts, reach, brand_reach, has_brand_signal, out_accounts)]
    positive, neutral, negative = sentiment_counts
    rated = positive + neutral + negative
    if rated:
        counted = [f"{count:,} {label}" for count, label in ((negative, "negative"), (neutral, "neutral"), (positive, "positive")) if count]
        parts.append("reactions " + ", ".join(counted))
    if followers is not None:
        parts.append(f"{followers:,} followers")
    parts.append(f"PageRank #{pagerank_rank:,} of {n_accounts:,}.")
    line = "; ".join(parts)
    return f"@{handle}: {line}" if handle else line


def _engagement(kind_counts: Sequence[int], reach: int, brand_reach: int, has_brand_signal: bool, out_accounts: int) -> str:
    if reach == 0:
        noun = "account" if out_accounts == 1 else "accounts"
        return f"Nobody engaged with this account; it engaged with {out_accounts:,} {noun}"
    # Most frequent kind first; the sort is stable, so ties keep INTERACTION_KINDS order.
    used = tuple(i for i in sorted(range(len(kind_counts)), key=kind_counts.__getitem__, reverse=True) if kind_counts[i])
    noun = "account" if reach == 1 else "accounts"
    text = f"{_verb_phrase(used)} by {reach:,} {noun}"
    if has_brand_signal:
        text += f" ({brand_reach:,} about tracked brands)"
    if len(used) > 1 and kind_counts[used[0]] * 2 > sum(kind_counts):
        text += f", mostly in {_MOSTLY[INTERACTION_KINDS[used[0]]]}"
    return text


@cache
def _verb_phrase(used: tuple[int, ...]) -> str:
    verbs = [_VERBS[INTERACTION_KINDS[i]] for i in used]
    verb = verbs[0] if len(verbs) == 1 else ", ".join(verbs[:-1]) + " or " + verbs[-1]
    return verb[0].upper() + verb[1:]
