"""Rank accounts by influence and say why, in one line a marketer can read.

Graph: one node per (source, account_id); one edge per interaction from the actor to the
account acted upon, weighted `settings.weights[kind] * 2 ** (-age_days / half_life_days)`
with the age measured against `as_of` (default: the newest interaction, so re-ranking the
same data gives the same rows). Self-loops are dropped; duplicate edges add up.

Score, for each account v (maxima are taken over the returned accounts)::

    term_pagerank(v) = pagerank(v) / max pagerank          (brand_pagerank alike, rank_all only)
    term_k(v)        = log(1 + x_k(v)) / max log(1 + x_k)  for reach, in_degree, followers
    structural(v)    = Σ_k weight_k · term_k(v)
    score(v)         = structural(v) * (1 + 0.5 * brand_share(v) + 0.25 * |net_sentiment(v)|)

with x_reach = engaging_accounts, x_in_degree = weighted_in_degree, x_followers = followers (0
when unknown; divided by at least log(1 + 100,000)); a term whose max is 0 is 0. The weights
are fitted on 4,000 human judgements of influence (graph/influence_weights.json, rebuilt by
`python -m graph.train_influence`; there the PageRank slot is filled by the log of the listed
count, a count like the others); `rank_all` uses the same terms and weights for the structural
part of its buying-influence score.

rank_accounts adds three audience curves when the accounts table gives the figures
(`audience_contributions`; fitted with the weights, same file), and never goes below 0:

    structural(v) = max(0, Σ_k weight_k · term_k + following_curve(following)
                           + posting_curve(posts per day) + ratio_curve((1 + followers) / (1 + following)))

Each curve is piecewise linear in the log of its input, measured from a typical judged account
(the median one: 0 there, negative below it); an unknown input gives 0, i.e. counts as typical,
so without an accounts table nothing changes and accounts without a profile are not pushed
behind those with one. Judges
preferred accounts that follow a few hundred others over broadcasters that follow nobody and
over mass-followers, posting a few times a day over silence or flooding, and more followers
per followed account (this curve only rises).

- pagerank: weighted PageRank, influence flowing from actor to the account acted upon.
- engaging_accounts: distinct accounts that replied to, reposted, quoted, mentioned or linked v.
- weighted_in_degree: the decayed, kind-weighted sum of those interactions.
- brand_share: share of that weighted engagement made in posts about a tracked brand
  (`post_signals.brand_related`); 0 without post signals.
- net_sentiment: (positive - negative) / (rated + 5) over the posts engaging with v, the 5
  imagined neutral posts keeping one angry reply from counting like a storm; its size
  counts, not its sign, because a detractor who sets off anger matters as much as an
  advocate; the sign is in the explanation.

Logs tame the heavy tails of counts; PageRank, already a smoothed share, keeps its linear
scale so that the one account everybody talks to stays visibly ahead (on the Higgs graph a
log-scaled PageRank lowered precision@100 against retweets from 0.46 to 0.39). Dividing by the
maximum keeps each term in [0, 1]. Each term's weighted value is in `factors` as `contribution_<term>`. Accounts whose id
starts with "site:" (linked web pages) take part in PageRank but are not returned.
"""

from __future__ import annotations

import json
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp

from connectors.records import INTERACTION_KINDS
from graph.build import KEY_SEPARATOR, EdgeList, build_edges, node_keys
from graph.explain import explain
from graph.pagerank import weighted_pagerank
from graph.records import InfluenceScore
from nlp.errors import ModelMissingError
from resonanz.settings import GraphSettings

SITE_PREFIX = "site:"
STRUCTURAL_TERMS = ("pagerank", "brand_pagerank", "reach", "in_degree", "followers")
AUDIENCE_TERMS = ("following", "posting_rate", "followers_per_following")
STRUCTURAL_WEIGHTS_PATH = Path(__file__).with_name("influence_weights.json")
# Followers are divided by at least log(1 + 100,000): where few accounts report followers, a
# handful of them must not count as the top of the scale (no effect on the PeerIndex fit,
# whose largest account has 36M followers).
FOLLOWERS_SCALE_FLOOR = 100_000
BRAND_BOOST = 0.5
SENTIMENT_BOOST = 0.25
SENTIMENT_PRIOR = 5.0


@cache
def load_structural_weights(path: Path = STRUCTURAL_WEIGHTS_PATH) -> dict[str, float]:
    """Return the fitted weight of every structural term, checked to be non-negative and complete."""
    try:
        weights = json.loads(path.read_text())["weights"]
    except (OSError, ValueError, KeyError) as error:
        raise ModelMissingError(f"cannot read structural influence weights from {path} ({error}); "
                                "rebuild them with `python -m graph.train_influence DATA_DIR --out graph`") from error
    if set(weights) != set(STRUCTURAL_TERMS) or any(float(weights[name]) < 0 for name in STRUCTURAL_TERMS):
        raise ModelMissingError(f"{path} must give a weight >= 0 for each of {', '.join(STRUCTURAL_TERMS)}")
    return {name: float(weights[name]) for name in STRUCTURAL_TERMS}


@cache
def load_audience_curves(path: Path = STRUCTURAL_WEIGHTS_PATH) -> dict[str, dict[str, np.ndarray | float]]:
    """Return each audience curve as log-scale knots, values at the knots and a typical judged account's value."""
    try:
        curves = json.loads(path.read_text())["audience_curves"]
        loaded = {name: {"log_knots": np.asarray(curves[name]["log_knots"], dtype=np.float64),
                         "values": np.asarray(curves[name]["values"], dtype=np.float64),
                         "typical": float(curves[name]["typical"])} for name in AUDIENCE_TERMS}
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ModelMissingError(f"cannot read the audience curves from {path} ({error}); "
                                "rebuild them with `python -m graph.train_influence DATA_DIR --out graph`") from error
    for name, curve in loaded.items():
        knots, values = curve["log_knots"], curve["values"]
        if knots.size < 2 or knots.shape != values.shape or np.any(np.diff(knots) <= 0) or values.min() < 0:
            raise ModelMissingError(f"{path}: the {name} curve needs increasing knots and one value >= 0 per knot")
    return loaded


def audience_inputs(followers: np.ndarray | None, following: np.ndarray | None,
                    posts_per_day: np.ndarray | None, n: int) -> dict[str, np.ndarray]:
    """Return each audience curve's input on its log scale, NaN where a figure is unknown."""
    unknown = np.full(n, np.nan)

    def logged(values: np.ndarray | None) -> np.ndarray:
        # Negative counts are placeholders for "unknown" in some callers.
        raw = unknown if values is None else np.asarray(values, dtype=np.float64)
        return np.log1p(np.where(raw >= 0, raw, np.nan))

    return {
        "following": logged(following),
        "posting_rate": logged(posts_per_day),
        "followers_per_following": logged(followers) - logged(following),
    }


def audience_contributions(
    followers: np.ndarray | None,
    following: np.ndarray | None,
    posts_per_day: np.ndarray | None,
    n: int,
    curves: dict[str, dict[str, np.ndarray | float]] | None = None,
) -> dict[str, np.ndarray]:
    """Return each audience curve's value per account, to be added to the structural score.

    Inputs are absolute figures from the account's profile (they mean the same in the judged
    data and in the product, unlike engagement counts, whose time base differs); beyond the
    outer knots a curve stays flat. Values are measured from the typical judged account, so
    they may be negative; an unknown figure gives 0 (counted as typical).
    """
    chosen = load_audience_curves() if curves is None else curves
    inputs = audience_inputs(followers, following, posts_per_day, n)
    out = {}
    for name in AUDIENCE_TERMS:
        curve, x = chosen[name], inputs[name]
        value = np.interp(np.nan_to_num(x, nan=0.0), curve["log_knots"], curve["values"])
        out[name] = np.where(np.isnan(x), 0.0, value - curve["typical"])
    return out


def structural_terms(
    endorsement: np.ndarray,
    engaging_accounts: np.ndarray,
    weighted_in_degree: np.ndarray,
    followers: np.ndarray | None = None,
    brand_endorsement: np.ndarray | None = None,
    log_endorsement: bool = False,
) -> dict[str, np.ndarray]:
    """Return each structural term in [0, 1] for the ranked accounts.

    endorsement is PageRank in the product, divided by its maximum; with log_endorsement (the
    listed count in the PeerIndex fit) it is log-scaled like the counts. Counts give
    log(1 + x) / max log(1 + x); unknown followers are NaN and count as 0, and the followers
    term is divided by at least log(1 + FOLLOWERS_SCALE_FLOOR); a missing input gives zeros.
    """
    zeros = np.zeros(np.shape(engaging_accounts))
    inputs = {
        "pagerank": endorsement,
        "brand_pagerank": zeros if brand_endorsement is None else brand_endorsement,
        "reach": engaging_accounts,
        "in_degree": weighted_in_degree,
        "followers": zeros if followers is None else np.nan_to_num(np.asarray(followers, dtype=np.float64), nan=0.0),
    }
    logged = {"reach", "in_degree", "followers"} | ({"pagerank", "brand_pagerank"} if log_endorsement else set())
    values = {name: np.maximum(np.asarray(inputs[name], dtype=np.float64), 0.0) for name in STRUCTURAL_TERMS}
    values.update({name: np.log1p(values[name]) for name in logged})
    terms = {name: _scaled(value) for name, value in values.items()}
    if values["followers"].size:
        terms["followers"] = values["followers"] / max(float(values["followers"].max()), float(np.log1p(FOLLOWERS_SCALE_FLOOR)))
    return terms


def structural_score(terms: dict[str, np.ndarray], weights: dict[str, float] | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Return the structural score and each term's weighted contribution (they sum to the score)."""
    chosen = load_structural_weights() if weights is None else weights
    contributions = {name: chosen[name] * terms[name] for name in STRUCTURAL_TERMS}
    return sum(contributions.values()), contributions


def rank_accounts(
    interactions: pa.Table,
    settings: GraphSettings,
    post_signals: pa.Table | None = None,
    accounts: pa.Table | None = None,
    as_of: datetime | None = None,
) -> list[InfluenceScore]:
    """Return every account in the interaction graph, most influential first, with reasons."""
    if interactions.num_rows == 0:
        return []
    edges = build_edges(interactions, settings.weights, settings.half_life_days, post_signals, as_of)
    if edges.n_nodes == 0:
        return []
    pagerank = weighted_pagerank(edges.src, edges.dst, edges.weight, edges.n_nodes, settings.damping)
    stats = _node_stats(edges)
    # Brand counts are only stated for sources whose posts were analysed at all.
    sources_with_signals = set() if post_signals is None else set(pc.unique(post_signals["source"]).to_pylist())
    eligible = np.array([not account.startswith(SITE_PREFIX) for account in edges.node_account], dtype=bool)
    nodes = np.flatnonzero(eligible)
    if nodes.size == 0:
        return []
    node_stats = {name: values[nodes] for name, values in stats.items()}
    meta = account_columns(edges, accounts)
    # -1 marks an unknown follower count in the records; NaN counts as 0 in the score.
    followers = np.where(np.isnan(meta["followers"]), -1, meta["followers"]).astype(np.int64)
    known_followers = np.where(followers[nodes] >= 0, followers[nodes], np.nan)
    audience = audience_contributions(known_followers, meta["following"][nodes], meta["posts_per_day"][nodes], nodes.size)
    parts = _score_parts(pagerank[nodes], node_stats, known_followers, audience)
    score = parts["structural"] * (1 + BRAND_BOOST * parts["brand_share"] + SENTIMENT_BOOST * np.abs(parts["net_sentiment"]))
    # Node order is (source, account_id) order, so the last key breaks ties stably.
    order = np.lexsort((np.arange(nodes.size), -pagerank[nodes], -score))
    pagerank_rank = np.empty(nodes.size, dtype=np.int64)
    pagerank_rank[np.lexsort((np.arange(nodes.size), -pagerank[nodes]))] = np.arange(1, nodes.size + 1)
    handles = meta["handles"]

    # Plain lists in rank order: indexing numpy scalars one by one would dominate the loop.
    ranked = nodes[order]
    col = {name: values[order].tolist() for name, values in node_stats.items() if values.ndim == 1}
    col.update(
        score=score[order].tolist(),
        pagerank=pagerank[ranked].tolist(),
        pagerank_rank=pagerank_rank[order].tolist(),
        brand_share=parts["brand_share"][order].tolist(),
        net_sentiment=parts["net_sentiment"][order].tolist(),
        followers=followers[ranked].tolist(),
    )
    # brand_pagerank is only computed by rank_all; here its term is 0 and left out of factors.
    contribution_names = [f"contribution_{name}" for name in STRUCTURAL_TERMS if name != "brand_pagerank"]
    contribution_names += [f"contribution_{name}" for name in AUDIENCE_TERMS]
    col.update({name: parts[name][order].tolist() for name in contribution_names})
    kind_counts = node_stats["kind_counts"][order].tolist()
    node_ids = ranked.tolist()
    n_accounts = int(nodes.size)

    results: list[InfluenceScore] = []
    for i, node in enumerate(node_ids):
        source = edges.node_source[node]
        followers_count = col["followers"][i] if col["followers"][i] >= 0 else None
        factors = {
            "pagerank": col["pagerank"][i],
            "pagerank_rank": float(col["pagerank_rank"][i]),
            "engaging_accounts": float(col["reach"][i]),
            "weighted_in_degree": col["in_degree"][i],
            "brand_share": col["brand_share"][i],
            "net_sentiment": col["net_sentiment"][i],
            **{name: col[name][i] for name in contribution_names},
        }
        if followers_count is not None:
            factors["followers"] = float(followers_count)
        explanation = explain(
            handle=handles[node] if handles else None,
            kind_counts=kind_counts[i],
            reach=col["reach"][i],
            brand_reach=col["brand_reach"][i],
            has_brand_signal=source in sources_with_signals,
            sentiment_counts=(col["positive"][i], col["neutral"][i], col["negative"][i]),
            out_accounts=col["out_reach"][i],
            pagerank_rank=col["pagerank_rank"][i],
            n_accounts=n_accounts,
            followers=followers_count,
        )
        results.append(
            InfluenceScore(
                as_of=edges.as_of,
                source=source,
                account_id=edges.node_account[node],
                rank=i + 1,
                score=col["score"][i],
                pagerank=col["pagerank"][i],
                in_degree=col["in_degree"][i],
                out_degree=col["out_degree"][i],
                explanation=explanation,
                factors=factors,
            )
        )
    return results


def _node_stats(edges: EdgeList) -> dict[str, np.ndarray]:
    """Aggregate per-node engagement figures from the edge arrays."""
    n = edges.n_nodes
    stats: dict[str, np.ndarray] = {
        "in_degree": np.bincount(edges.dst, weights=edges.weight, minlength=n),
        "out_degree": np.bincount(edges.src, weights=edges.weight, minlength=n),
        "brand_in_degree": np.bincount(edges.dst, weights=edges.weight * edges.brand_related, minlength=n),
        "reach": _distinct_count(edges.dst, edges.src, n),
        "out_reach": _distinct_count(edges.src, edges.dst, n),
        "brand_reach": _distinct_count(edges.dst[edges.brand_related], edges.src[edges.brand_related], n),
        "kind_counts": np.bincount(
            edges.dst * len(INTERACTION_KINDS) + edges.kind, minlength=n * len(INTERACTION_KINDS)
        ).reshape(n, len(INTERACTION_KINDS)),
    }
    for name, code in (("positive", 1), ("neutral", 0), ("negative", -1)):
        labelled = edges.sentiment == code
        # A post that both replies to and mentions an account is one reaction, not two.
        stats[name] = _distinct_count(edges.dst[labelled], edges.post[labelled], n)
    return stats


def _distinct_count(group: np.ndarray, member: np.ndarray, n: int) -> np.ndarray:
    """Return, for each group id in [0, n), how many distinct members it has."""
    if group.size == 0:
        return np.zeros(n, dtype=np.int64)
    # A sparse matrix with duplicates summed has one stored entry per distinct (group, member).
    pairs = sp.csr_array((np.ones(group.size, dtype=np.int32), (group, member)), shape=(n, int(member.max()) + 1))
    pairs.sum_duplicates()
    return np.diff(pairs.indptr).astype(np.int64)


def _score_parts(pagerank: np.ndarray, stats: dict[str, np.ndarray], followers: np.ndarray | None,
                 audience: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    in_degree = stats["in_degree"]
    brand_share = np.divide(stats["brand_in_degree"], in_degree, out=np.zeros_like(in_degree), where=in_degree > 0)
    labelled = (stats["positive"] + stats["neutral"] + stats["negative"]).astype(np.float64)
    net = (stats["positive"] - stats["negative"]).astype(np.float64) / (labelled + SENTIMENT_PRIOR)
    terms = structural_terms(pagerank, stats["reach"], in_degree, followers)
    structural, contributions = structural_score(terms)
    # Curves below the typical account may pull a weak account under 0: an influence score is not negative.
    structural = np.maximum(structural + sum(audience.values()), 0.0)
    contributions.update(audience)
    return {"structural": structural, "brand_share": brand_share, "net_sentiment": net,
            **{f"contribution_{name}": value for name, value in contributions.items()}}


def _scaled(values: np.ndarray) -> np.ndarray:
    top = values.max() if values.size else 0.0
    return values / top if top > 0 else np.zeros_like(values)


def account_columns(edges: EdgeList, accounts: pa.Table | None) -> dict[str, Any]:
    """Return per-node profile figures from the optional accounts table (NaN / None where unknown).

    followers, following, posts and age_days as float arrays; posts_per_day = posts / age in days,
    an account younger than a day counting one day (the bot signals and the posting curve both use
    it); handles as a list, or None without a handle column.
    """
    n = edges.n_nodes
    meta: dict[str, Any] = {name: np.full(n, np.nan) for name in ("followers", "following", "posts", "age_days")}
    meta["handles"] = None
    if accounts is not None and accounts.num_rows > 0:
        keys = pc.binary_join_element_wise(accounts["source"], accounts["account_id"].cast(pa.string()), KEY_SEPARATOR)
        rows = pc.index_in(node_keys(edges), value_set=keys)
        found = pc.is_valid(rows).to_numpy(zero_copy_only=False)
        at = rows.to_numpy(zero_copy_only=False)[found].astype(np.int64)
        for name, column in (("followers", "followers_count"), ("following", "following_count"), ("posts", "post_count")):
            if column in accounts.column_names:
                values = accounts[column].cast(pa.float64()).to_numpy(zero_copy_only=False)
                meta[name][found] = values[at]
        if "created_at" in accounts.column_names and pa.types.is_timestamp(accounts["created_at"].type):
            created = pc.cast(accounts["created_at"], pa.timestamp("us", tz="UTC")).cast(pa.int64()).to_numpy(zero_copy_only=False).astype(np.float64)
            as_of_us = (edges.as_of.timestamp()) * 1e6
            meta["age_days"][found] = (as_of_us - created[at]) / 86_400e6
        if "handle" in accounts.column_names:
            handles = accounts["handle"].to_pylist()
            positions = np.full(n, -1, dtype=np.int64)
            positions[found] = at
            meta["handles"] = [handles[p] if p >= 0 else None for p in positions.tolist()]
    meta["posts_per_day"] = meta["posts"] / np.maximum(meta["age_days"], 1.0)
    return meta
