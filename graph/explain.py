"""Plain-language, one-line reasons for an influence rank."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache
from typing import Any

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


def engagement_sentence(
    *,
    handle: str | None,
    kind_counts: Sequence[int],
    reach: int,
    brand_reach: int,
    has_brand_signal: bool,
    sentiment_counts: tuple[int, int, int],
    out_accounts: int,
) -> str:
    """Return what others did with an account, in one sentence without rank figures (those go in the reasons)."""
    if reach == 0:
        noun = "account" if out_accounts == 1 else "accounts"
        text = f"Nobody engaged with this account; it engaged with {out_accounts:,} {noun}"
    else:
        used = tuple(i for i in sorted(range(len(kind_counts)), key=kind_counts.__getitem__, reverse=True) if kind_counts[i])
        noun = "account" if reach == 1 else "accounts"
        verb = _verb_phrase(used)
        text = f"{reach:,} {noun} {verb[0].lower()}{verb[1:]} them"
        if has_brand_signal and brand_reach:
            text += ", all about tracked brands" if brand_reach == reach else f", {brand_reach:,} of them about tracked brands"
        if len(used) > 1 and kind_counts[used[0]] * 2 > sum(kind_counts):
            text += f" (mostly {_MOSTLY[INTERACTION_KINDS[used[0]]]})"
    positive, neutral, negative = sentiment_counts
    if positive + neutral + negative:
        counted = [f"{count:,} {label}" for count, label in ((negative, "negative"), (neutral, "neutral"), (positive, "positive")) if count]
        text += "; reactions: " + ", ".join(counted)
    text += "."
    return f"@{handle}: {text}" if handle else text


# One plain phrase per scored factor. None repeats a figure of `engagement_sentence`: where the
# fact is already there (how many accounts engaged), the phrase names the factor, not the number.
REASONS: dict[str, Callable[[dict[str, Any]], str]] = {
    "pagerank": lambda f: (f"engagement from accounts that are well connected themselves "
                           f"(network rank #{f['pagerank_rank']:,} of {f['n_accounts']:,})"),
    "brand_pagerank": lambda f: "their place in the conversations about tracked brands",
    "reach": lambda f: "how many different people engage with them",
    "in_degree": lambda f: f"how often and how recently they are engaged with (worth {f['weighted_in_degree']:,.0f} fresh interactions)",
    "followers": lambda f: f"{f['followers']:,} followers",
    "following": lambda f: "they follow other accounts, not only broadcast",
    "posting_rate": lambda f: "they post regularly without flooding",
    "followers_per_following": lambda f: "many followers for each account they follow",
    "brand_engagement_share": lambda f: f"{f['brand_engagement_share']:.0%} of the engagement they draw is about tracked brands",
    "purchase_intent_share": lambda f: f"{f['purchase_intent_reactions']:,} reactions to them show buying interest",
    "abs_net_sentiment": lambda f: f"reactions to them that are clearly {'positive' if f['net_sentiment'] > 0 else 'negative'}",
    "own_brand_share": lambda f: f"{f['own_brand_share']:.0%} of their own posts are about tracked brands",
}


def reasons_sentence(factors: Sequence[str], figures: dict[str, Any]) -> str:
    """Return "Score driven mostly by: …." naming the given factors (strongest first), or "" for none."""
    said = [REASONS[name](figures) for name in factors]
    if not said:
        return ""
    return "Score driven mostly by: " + "; ".join(said) + "."
