"""The full ranking: buying influence with reasons and examples, communities, bots, rising accounts.

`rank_all` is the one entry point the flow calls. It builds the edge list once and derives
everything from it with scipy.sparse and numpy; see docs/influence.md for every formula.

Buying influence of account v (maxima over the returned accounts; a term whose input is
unknown everywhere is 0 for everybody and so does not change the order)::

    structural(v) = max(0, 0.352 · pagerank / max + 0.15 · brand_pagerank / max
                  + 0.146 · log(1 + engaging_accounts) / max + 0.137 · log(1 + weighted_in_degree) / max
                  + 0.215 · log(1 + followers) / max(max, log(1 + 100,000))
                  + following, posting-rate and followers-per-following curves (graph.influence))

(structural weights and curves fitted on the PeerIndex pairs, graph/influence_weights.json;
brand_pagerank's 0.15 is set by design)
    boost(v)      = 1 + 0.4 · brand_engagement_share + 0.4 · purchase_intent_share
                      + 0.2 · |net_sentiment| + 0.2 · own_brand_share
    score(v)      = structural(v) · boost(v) · (1 − 0.75 · bot_score(v))
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from graph.bots import (
    LIKELY_BOT,
    SIGNALS,
    bot_score,
    bot_signals,
    burstiness,
    explain_bot,
)
from graph.build import (
    KEY_SEPARATOR,
    AccountMerge,
    EdgeList,
    build_edges,
    merge_accounts,
    node_keys,
)
from graph.communities import detect_communities
from graph.explain import engagement_sentence, reasons_sentence
from graph.influence import (
    SENTIMENT_PRIOR,
    SITE_PREFIX,
    _node_stats,
    account_columns,
    audience_contributions,
    load_structural_weights,
    structural_terms,
)
from graph.pagerank import weighted_pagerank
from graph.records import (
    ArrowRows,
    BotScore,
    BrandInfluence,
    Community,
    CommunityMember,
    InfluenceScore,
    RankingResult,
    RisingInfluencer,
)
from graph.rising import MIN_ENGAGEMENT, THRESHOLD, rise_scores
from graph.structure import (
    adjacency,
    core_numbers,
    fold,
    hits,
    igraph_of,
    personalised_pagerank,
)
from resonanz.settings import GraphSettings

BOOST_WEIGHTS = {"brand_engagement_share": 0.4, "purchase_intent_share": 0.4, "abs_net_sentiment": 0.2, "own_brand_share": 0.2}
BOT_PENALTY = 0.75
INTENT_PRIOR = 5.0
MIN_COMMUNITY_SIZE = 3
COMMUNITY_LEADERS = 3
EXAMPLES_PER_ACCOUNT = 3
EXAMPLE_ACCOUNTS = 1000  # example posts are looked up for this many top accounts
EXAMPLE_CANDIDATES = 200  # heaviest interactions per account considered for its examples
EXPLAINED_ACCOUNTS = 10_000  # full reasons for this many top accounts, one short sentence for the rest
BOT_ROWS_FROM = 0.2  # bot_scores keeps accounts at or above this score; every score is in factors
# Intent labels (nlp task "intent": buy/consider/recommend/complaint/churn/none) that show buying interest;
# the older names stay accepted for post_signals built by hand.
PURCHASE_LABELS = ("buy", "consider", "purchase", "purchase_intent", "kaufabsicht")
# Shown to analysts (factors and explanation) but not scored: a warning, not influence.
LEAVING_LABELS = ("complaint", "churn")


def rank_all(
    interactions: pa.Table,
    settings: GraphSettings,
    post_signals: pa.Table | None = None,
    accounts: pa.Table | None = None,
    history: pa.Table | None = None,
    brand_posts: pa.Table | None = None,
    as_of: datetime | None = None,
    identities: pa.Table | None = None,
    on_step: Callable[[str, float, float], None] | None = None,
) -> RankingResult:
    """Return buying-influence scores with reasons, communities, bot scores, rising and per-brand standings.

    `identities` (source, account_id, person_id) counts the linked accounts of one person as one
    node; each of those accounts still gets its own score row, naming the person.
    """
    timings: dict[str, float] = {}

    def step(name: str, work: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        value = work()
        ended = time.perf_counter()
        timings[name] = round(ended - started, 4)
        if on_step is not None:
            on_step(name, started, ended)  # lets a benchmark attribute memory to steps
        return value

    empty = RankingResult([], [], [], [], [], [], {}, timings)
    if interactions.num_rows == 0:
        return empty
    edges: EdgeList = step("build_edges", lambda: build_edges(
        interactions, settings.weights, settings.half_life_days, post_signals, as_of))
    edges, merge = step("merge_accounts", lambda: merge_accounts(edges, identities))
    n = edges.n_nodes
    if n == 0:
        return empty
    matrix = step("adjacency", lambda: adjacency(edges.src, edges.dst, edges.weight, n))
    pagerank = step("pagerank", lambda: weighted_pagerank(edges.src, edges.dst, edges.weight, n, settings.damping))
    edge_brands = step("brand_posts", lambda: _edge_brands(interactions, edges, brand_posts))
    brand_edge = edges.brand_related | (edge_brands[0] if edge_brands else np.zeros(edges.src.size, dtype=bool))
    interest = np.bincount(edges.src, weights=edges.weight * brand_edge, minlength=n) + np.bincount(
        edges.dst, weights=edges.weight * brand_edge, minlength=n)
    brand_pagerank = step("brand_pagerank", lambda: personalised_pagerank(
        edges.src, edges.dst, edges.weight, n, interest, settings.damping))
    hubs, authorities = step("hits", lambda: hits(matrix))
    undirected = step("undirected_graph", lambda: igraph_of(fold(matrix), n))
    cores = step("k_core", lambda: core_numbers(matrix, undirected))
    stats = step("node_stats", lambda: _node_stats(edges))
    signals = step("reaction_signals", lambda: _reaction_signals(interactions, edges, post_signals, brand_edge))
    own_share = step("own_brand_share", lambda: _own_brand_share(edges, post_signals))
    meta = account_columns(edges, accounts)
    bots = step("bots", lambda: _bot_signals(edges, meta, post_signals))
    bot = bot_score(bots)

    eligible = np.array([not account.startswith(SITE_PREFIX) for account in edges.node_account], dtype=bool)
    nodes = np.flatnonzero(eligible)
    if nodes.size == 0:
        return empty
    parts = _buying_parts(nodes, pagerank, brand_pagerank, stats, signals, own_share, meta, bot)
    score = parts["score"]
    order = np.lexsort((np.arange(nodes.size), -pagerank[nodes], -score))
    ranked = nodes[order]
    labels = step("communities", lambda: detect_communities(matrix, undirected=undirected))
    del undirected  # the igraph copy of the graph is large and no longer needed
    examples = step("examples", lambda: _examples(interactions, edges, ranked[:EXAMPLE_ACCOUNTS], brand_edge))
    handles = meta["handles"]

    table = step("explanations", lambda: _score_table(
        edges, nodes, order, parts, stats, pagerank, hubs, authorities, cores, labels, bot, examples, handles,
        meta["followers"], post_signals))
    if merge.merged:
        table, examples = step("split_persons", lambda: _per_account(table, edges, ranked, merge, examples))
    scores = ArrowRows(table, InfluenceScore, ("factors",))
    node_score = np.zeros(n)
    node_score[nodes] = score
    communities, members = step("community_summaries", lambda: _community_records(
        edges, labels, node_score, eligible, edge_brands, handles))
    bot_rows = step("bot_records", lambda: _bot_records(edges, nodes, bot, bots))
    rising = step("rising", lambda: _rising_records(edges, ranked, score[order], stats["in_degree"][ranked], history))
    brands = step("brand_subgraphs", lambda: _brand_records(edges, edge_brands, eligible, settings.damping))
    example_ids = examples if merge.merged else {
        (edges.node_source[node], edges.node_account[node]): posts for node, posts in examples.items()}
    return RankingResult(scores, communities, members, bot_rows, rising, brands, example_ids, timings)


# ---- per-edge signals ------------------------------------------------------------------------

def _edge_brands(interactions: pa.Table, edges: EdgeList, brand_posts: pa.Table | None) -> tuple[np.ndarray, np.ndarray, list[str]] | None:
    """Return (edge concerns any brand, (edge, brand code) pairs as an n×2 array, brand names) or None."""
    if brand_posts is None or brand_posts.num_rows == 0 or edges.rows is None:
        return None
    missing = [c for c in ("source", "post_id", "brand") if c not in brand_posts.column_names]
    if missing:
        raise ValueError(f"brand_posts table lacks column(s) {', '.join(missing)}")
    names = sorted(set(pc.unique(brand_posts["brand"]).to_pylist()) - {None})
    mentions = pa.table({
        "source": brand_posts["source"].cast(pa.string()),
        "post_id": brand_posts["post_id"].cast(pa.string()),
        "brand_code": pc.index_in(brand_posts["brand"], value_set=pa.array(names, pa.string())),
    }).drop_null()
    kept = interactions.select(["source", "post_id", "target_post_id"]).take(pa.array(edges.rows))
    pairs = []
    for column in ("post_id", "target_post_id"):
        side = pa.table({"source": kept["source"], "post_id": kept[column], "edge": pa.array(np.arange(kept.num_rows))})
        joined = side.join(mentions, keys=["source", "post_id"], join_type="inner")
        pairs.append(np.column_stack((joined["edge"].to_numpy(), joined["brand_code"].to_numpy().astype(np.int64))))
    both = np.unique(np.vstack(pairs), axis=0) if any(p.size for p in pairs) else np.zeros((0, 2), np.int64)
    concerned = np.zeros(edges.src.size, dtype=bool)
    concerned[both[:, 0]] = True
    return concerned, both, names


def _reaction_signals(interactions: pa.Table, edges: EdgeList, post_signals: pa.Table | None, brand_edge: np.ndarray) -> dict[str, np.ndarray]:
    """Return per node: brand engagement received, purchase-intent reactions and labelled reactions."""
    n = edges.n_nodes
    brand_in = np.bincount(edges.dst, weights=edges.weight * brand_edge, minlength=n)
    intent = np.zeros(edges.src.size, dtype=np.int8) - 1  # -1 unknown, 0 other, 1 purchase intent, 2 complaint or churn
    if post_signals is not None and post_signals.num_rows and edges.rows is not None:
        column = next((c for c in ("intent", "purchase_intent") if c in post_signals.column_names), None)
        if column is not None:
            values = post_signals[column]
            if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
                lowered = pc.utf8_lower(values)
                buying = pc.fill_null(pc.is_in(lowered, value_set=pa.array(PURCHASE_LABELS)), False)
                leaving = pc.fill_null(pc.is_in(lowered, value_set=pa.array(LEAVING_LABELS)), False)
                flag = pc.if_else(buying, 1, pc.if_else(leaving, 2, 0))
                flag = pc.if_else(pc.is_null(values), pa.scalar(None, pa.int64()), flag)
            else:
                flag = pc.greater_equal(values.cast(pa.float64()), 0.5)
            keys = pc.binary_join_element_wise(post_signals["source"], post_signals["post_id"].cast(pa.string()), KEY_SEPARATOR)
            kept = interactions.select(["source", "post_id"]).take(pa.array(edges.rows))
            edge_keys = pc.binary_join_element_wise(kept["source"], kept["post_id"], KEY_SEPARATOR)
            row = pc.index_in(edge_keys, value_set=keys)
            found = pc.is_valid(row).to_numpy(zero_copy_only=False)
            flag_np = pc.fill_null(pc.cast(flag, pa.int8()), -1).to_numpy(zero_copy_only=False)
            intent[found] = flag_np[row.to_numpy(zero_copy_only=False)[found].astype(np.int64)]
    known = intent >= 0
    return {
        "brand_in_degree": brand_in,
        "intent_reactions": np.bincount(edges.dst[known], weights=(intent[known] == 1).astype(np.float64), minlength=n),
        "intent_labelled": np.bincount(edges.dst[known], minlength=n).astype(np.float64),
        "leaving_reactions": np.bincount(edges.dst[known], weights=(intent[known] == 2).astype(np.float64), minlength=n),
    }


def _own_brand_share(edges: EdgeList, post_signals: pa.Table | None) -> np.ndarray:
    """Return the share of each node's own analysed posts that concern a tracked brand."""
    share = np.zeros(edges.n_nodes)
    if post_signals is None or post_signals.num_rows == 0 or "author_id" not in post_signals.column_names:
        return share
    signals = post_signals.filter(pc.is_valid(post_signals["author_id"]))
    keys = pc.binary_join_element_wise(signals["source"], signals["author_id"].cast(pa.string()), KEY_SEPARATOR)
    node = pc.index_in(keys, value_set=node_keys(edges))
    found = pc.is_valid(node).to_numpy(zero_copy_only=False)
    node_np = node.to_numpy(zero_copy_only=False)[found].astype(np.int64)
    brand = pc.fill_null(signals["brand_related"].cast(pa.bool_()), False).to_numpy(zero_copy_only=False)[found]
    posts = np.bincount(node_np, minlength=edges.n_nodes).astype(np.float64)
    about = np.bincount(node_np, weights=brand.astype(np.float64), minlength=edges.n_nodes)
    np.divide(about, posts, out=share, where=posts > 0)
    return share


# ---- account metadata and bots ---------------------------------------------------------------

def _bot_signals(edges: EdgeList, meta: dict[str, Any], post_signals: pa.Table | None) -> dict[str, np.ndarray]:
    n = edges.n_nodes
    # Burstiness and, failing account metadata, posting rate come from the account's own actions.
    micros = edges.created_us if edges.created_us is not None else np.full(edges.src.size, np.nan)
    burst, _ = burstiness(edges.src, micros, n)
    return bot_signals(
        age_days=meta["age_days"],
        posts_per_day=meta["posts_per_day"],
        duplicate_share=_duplicate_share(edges, post_signals),
        followers=meta["followers"],
        following=meta["following"],
        burstiness=burst,
    )


def _duplicate_share(edges: EdgeList, post_signals: pa.Table | None) -> np.ndarray:
    """Return per node the share of its posts whose text it also posted elsewhere (NaN when unknown)."""
    share = np.full(edges.n_nodes, np.nan)
    if post_signals is None or post_signals.num_rows == 0:
        return share
    column = next((c for c in ("text_hash", "text") if c in post_signals.column_names), None)
    if column is None or "author_id" not in post_signals.column_names:
        return share
    posts = post_signals.select(["source", "author_id", column]).drop_null()
    counted = posts.group_by(["source", "author_id", column]).aggregate([([], "count_all")])
    duplicated = pc.if_else(pc.greater(counted["count_all"], 1), counted["count_all"], 0)
    per_author = pa.table({"source": counted["source"], "author_id": counted["author_id"],
                           "posts": counted["count_all"], "dups": duplicated}).group_by(["source", "author_id"]).aggregate(
        [("posts", "sum"), ("dups", "sum")])
    keys = pc.binary_join_element_wise(per_author["source"], per_author["author_id"].cast(pa.string()), KEY_SEPARATOR)
    node = pc.index_in(keys, value_set=node_keys(edges))
    found = pc.is_valid(node).to_numpy(zero_copy_only=False)
    at = node.to_numpy(zero_copy_only=False)[found].astype(np.int64)
    total = per_author["posts_sum"].to_numpy().astype(np.float64)[found]
    dups = per_author["dups_sum"].to_numpy().astype(np.float64)[found]
    share[at] = np.where(total >= 2, dups / np.maximum(total, 1), np.nan)
    return share


# ---- the score -------------------------------------------------------------------------------

def _buying_parts(nodes: np.ndarray, pagerank: np.ndarray, brand_pagerank: np.ndarray, stats: dict[str, np.ndarray],
                  signals: dict[str, np.ndarray], own_share: np.ndarray, meta: dict[str, Any], bot: np.ndarray) -> dict[str, np.ndarray]:
    """Return every term of the buying-influence score for the returned nodes."""
    followers = meta["followers"]
    in_degree = stats["in_degree"][nodes]
    labelled = (stats["positive"] + stats["neutral"] + stats["negative"])[nodes].astype(np.float64)
    net = (stats["positive"] - stats["negative"])[nodes].astype(np.float64) / (labelled + SENTIMENT_PRIOR)
    # The structural formula and its fitted weights live in graph.influence (docs/influence.md).
    terms = structural_terms(
        endorsement=pagerank[nodes], engaging_accounts=stats["reach"][nodes], weighted_in_degree=in_degree,
        followers=followers[nodes], brand_endorsement=brand_pagerank[nodes])
    weights = load_structural_weights()
    boost_terms = {
        "brand_engagement_share": np.divide(signals["brand_in_degree"][nodes], in_degree, out=np.zeros(nodes.size), where=in_degree > 0),
        "purchase_intent_share": signals["intent_reactions"][nodes] / (signals["intent_labelled"][nodes] + INTENT_PRIOR),
        "abs_net_sentiment": np.abs(net),
        "own_brand_share": own_share[nodes],
    }
    audience = audience_contributions(followers[nodes], meta["following"][nodes], meta["posts_per_day"][nodes], nodes.size)
    # Curves below a typical account may pull a weak account under 0: an influence score is not negative.
    structural = np.maximum(sum(weights[name] * value for name, value in terms.items()) + sum(audience.values()), 0.0)
    boost = 1.0 + sum(BOOST_WEIGHTS[name] * value for name, value in boost_terms.items())
    penalty = 1.0 - BOT_PENALTY * bot[nodes]
    score = structural * boost * penalty
    # Each term's share of the score, for "top contributing factors": structural terms scaled by the
    # boost and penalty, boost terms by the structural part and penalty. An audience curve is a reason
    # only by what it adds over a typical account (its value; 0 where the figure is unknown).
    contributions = {name: weights[name] * value * boost * penalty for name, value in terms.items()}
    contributions.update({name: np.maximum(value, 0.0) * boost * penalty for name, value in audience.items()})
    contributions.update({name: BOOST_WEIGHTS[name] * value * structural * penalty for name, value in boost_terms.items()})
    return {"score": score, "structural": structural, "intent_reactions": signals["intent_reactions"][nodes],
            "leaving_reactions": signals["leaving_reactions"][nodes], "boost": boost, "penalty": penalty, "net_sentiment": net,
            **terms, **boost_terms, "contributions": contributions}  # type: ignore[dict-item]


# ---- examples and explanations ---------------------------------------------------------------

def _examples(interactions: pa.Table, edges: EdgeList, top_nodes: np.ndarray, brand_edge: np.ndarray) -> dict[int, list[str]]:
    """Return up to three post ids per top node: its posts that drew most engagement, brand posts first.

    A post of the account is the target of a reply/repost/quote; without a known target the
    post that engaged with the account stands in.
    """
    if top_nodes.size == 0 or edges.rows is None:
        return {}
    chosen = np.flatnonzero(np.isin(edges.dst, top_nodes))
    if chosen.size == 0:
        return {}
    # Brand posts count double so that they lead the examples when they drew similar engagement.
    weight = edges.weight[chosen] * np.where(brand_edge[chosen], 2.0, 1.0)
    # Only each account's EXAMPLE_CANDIDATES heaviest interactions go on to the grouping by post:
    # grouping millions of post-id strings for the busiest accounts cost more than PageRank.
    order = np.lexsort((-weight, edges.dst[chosen]))
    node = edges.dst[chosen][order]
    starts = np.flatnonzero(np.r_[True, node[1:] != node[:-1]])
    within = np.arange(node.size) - np.repeat(starts, np.diff(np.r_[starts, node.size]))
    keep = np.sort(order[within < EXAMPLE_CANDIDATES])
    chosen, weight = chosen[keep], weight[keep]
    # Only the two post columns: copying every string column of millions of rows cost seconds.
    kept = interactions.select(["post_id", "target_post_id"]).take(pa.array(edges.rows[chosen]))
    post = pc.coalesce(kept["target_post_id"], kept["post_id"])
    table = pa.table({"node": pa.array(edges.dst[chosen]), "post": post, "weight": pa.array(weight)}).group_by(
        ["node", "post"]).aggregate([("weight", "sum")])
    order = pc.sort_indices(table, [("node", "ascending"), ("weight_sum", "descending"), ("post", "ascending")])
    table = table.take(order)
    node = table["node"].to_numpy()
    starts = np.flatnonzero(np.r_[True, node[1:] != node[:-1]])
    take = np.concatenate([np.arange(s, min(s + EXAMPLES_PER_ACCOUNT, e)) for s, e in zip(starts, np.r_[starts[1:], node.size])])
    picked_nodes = node[take].tolist()
    picked_posts = table["post"].take(pa.array(take)).to_pylist()
    examples: dict[int, list[str]] = {}
    for n_id, post_id in zip(picked_nodes, picked_posts):
        examples.setdefault(n_id, []).append(post_id)
    return examples


def _score_table(edges: EdgeList, nodes: np.ndarray, order: np.ndarray, parts: dict[str, Any], stats: dict[str, np.ndarray],
                 pagerank: np.ndarray, hubs: np.ndarray, authorities: np.ndarray, cores: np.ndarray, labels: np.ndarray,
                 bot: np.ndarray, examples: dict[int, list[str]], handles: list[str | None] | None,
                 followers: np.ndarray, post_signals: pa.Table | None) -> pa.Table:
    """Return one row per returned account in rank order, columns as in `InfluenceScore`.

    The top EXPLAINED_ACCOUNTS get full reasons (a Python loop); the long tail gets one short
    sentence and its core figures built column-wise, as nobody reads a millionth reason.
    """
    ranked = nodes[order]
    n_accounts = int(nodes.size)
    pagerank_rank = np.empty(nodes.size, dtype=np.int64)
    pagerank_rank[np.lexsort((np.arange(nodes.size), -pagerank[nodes]))] = np.arange(1, nodes.size + 1)
    pagerank_rank = pagerank_rank[order]
    head = min(EXPLAINED_ACCOUNTS, n_accounts)
    explanations, factor_json = _head_reasons(
        edges, ranked[:head], order[:head], parts, stats, pagerank, pagerank_rank[:head], hubs, authorities, cores, labels,
        bot, examples, handles, followers, post_signals, n_accounts)
    reach = stats["reach"][ranked[head:]]
    tail_rank = pagerank_rank[head:]
    if reach.size:
        explanations = pa.concat_arrays([pa.array(explanations, pa.string()), _tail_sentences(reach, tail_rank, n_accounts)])
        factor_json = pa.concat_arrays([pa.array(factor_json, pa.string()), _json_objects({
            "bot_score": bot[ranked[head:]], "community": labels[ranked[head:]].astype(np.float64),
            "engaging_accounts": reach.astype(np.float64), "pagerank": pagerank[ranked[head:]],
            "pagerank_rank": tail_rank.astype(np.float64), "weighted_in_degree": stats["in_degree"][ranked[head:]],
        })])
    else:
        explanations, factor_json = pa.array(explanations, pa.string()), pa.array(factor_json, pa.string())
    sources = pa.array(edges.node_source, pa.string()).take(pa.array(ranked))
    accounts = pa.array(edges.node_account, pa.string()).take(pa.array(ranked))
    return pa.table({
        "as_of": pa.array([edges.as_of] * n_accounts, pa.timestamp("us", tz="UTC")),
        "source": sources, "account_id": accounts, "rank": pa.array(np.arange(1, n_accounts + 1), pa.int64()),
        "score": pa.array(parts["score"][order]), "pagerank": pa.array(pagerank[ranked]),
        "in_degree": pa.array(stats["in_degree"][ranked]), "out_degree": pa.array(stats["out_degree"][ranked]),
        "explanation": explanations, "factors": factor_json, "person_id": pa.nulls(n_accounts, pa.string()),
    })


def _tail_sentences(reach: np.ndarray, pagerank_rank: np.ndarray, n_accounts: int) -> pa.Array:
    """Return "Engaged with by N account(s); #R of T in the conversation network." column-wise."""
    count = pc.cast(pa.array(reach.astype(np.int64)), pa.string())
    noun = pa.array(np.where(reach == 1, " account; ", " accounts; "))
    rank = pc.cast(pa.array(pagerank_rank.astype(np.int64)), pa.string())
    return pc.binary_join_element_wise("Engaged with by ", count, noun, "#", rank, f" of {n_accounts} in the conversation network.", "")


def _json_objects(columns: dict[str, np.ndarray]) -> pa.Array:
    """Return one JSON object per row of equally long float columns, keys in the given order."""
    pieces: list[Any] = []
    for position, (name, values) in enumerate(columns.items()):
        pieces.append(("{" if position == 0 else ", ") + f'"{name}": ')
        pieces.append(pc.cast(pa.array(np.asarray(values, dtype=np.float64)), pa.string()))
    pieces.append("}")
    return pc.binary_join_element_wise(*pieces, "")


def _head_reasons(edges: EdgeList, ranked: np.ndarray, order: np.ndarray, parts: dict[str, Any], stats: dict[str, np.ndarray],
                  pagerank: np.ndarray, pagerank_rank: np.ndarray, hubs: np.ndarray, authorities: np.ndarray, cores: np.ndarray,
                  labels: np.ndarray, bot: np.ndarray, examples: dict[int, list[str]], handles: list[str | None] | None,
                  followers: np.ndarray, post_signals: pa.Table | None, n_accounts: int) -> tuple[list[str], list[str]]:
    """Return the explanation and the JSON factors of each top account, in rank order."""
    contribution_names = list(parts["contributions"])
    contribution = np.column_stack([parts["contributions"][name][order] for name in contribution_names])
    top3 = np.argsort(-contribution, axis=1, kind="stable")[:, :3].tolist()
    sources_with_signals = set() if post_signals is None else set(pc.unique(post_signals["source"]).to_pylist())
    col = {name: stats[name][ranked].tolist() for name in ("in_degree", "reach", "brand_reach", "out_reach", "positive", "neutral", "negative")}
    kind_counts = stats["kind_counts"][ranked].tolist()
    lists = {
        "pagerank": pagerank[ranked].tolist(), "pagerank_rank": pagerank_rank.tolist(),
        "brand_pagerank": parts["brand_pagerank"][order].tolist(), "hub": hubs[ranked].tolist(), "authority": authorities[ranked].tolist(),
        "k_core": cores[ranked].tolist(), "community": labels[ranked].tolist(), "bot": bot[ranked].tolist(),
        "penalty": parts["penalty"][order].tolist(), "followers": np.nan_to_num(followers[ranked], nan=-1).astype(np.int64).tolist(),
        "net": parts["net_sentiment"][order].tolist(),
        **{name: parts[name][order].tolist() for name in BOOST_WEIGHTS},
        "intent_reactions": parts["intent_reactions"][order].tolist(),
        "leaving_reactions": parts["leaving_reactions"][order].tolist(),
    }
    explanations: list[str] = []
    factor_json: list[str] = []
    for i, node in enumerate(ranked.tolist()):
        followers_count = lists["followers"][i] if lists["followers"][i] >= 0 else None
        factors: dict[str, float] = {
            "pagerank": lists["pagerank"][i], "pagerank_rank": float(lists["pagerank_rank"][i]),
            "brand_pagerank": lists["brand_pagerank"][i], "hits_hub": lists["hub"][i], "hits_authority": lists["authority"][i],
            "k_core": float(lists["k_core"][i]), "community": float(lists["community"][i]),
            "engaging_accounts": float(col["reach"][i]), "weighted_in_degree": col["in_degree"][i],
            "brand_engagement_share": lists["brand_engagement_share"][i], "purchase_intent_share": lists["purchase_intent_share"][i],
            "purchase_intent_reactions": float(lists["intent_reactions"][i]),
            "complaint_or_churn_reactions": float(lists["leaving_reactions"][i]),
            "own_brand_share": lists["own_brand_share"][i], "net_sentiment": lists["net"][i], "bot_score": lists["bot"][i],
        }
        if followers_count is not None:
            factors["followers"] = float(followers_count)
        figures = {"pagerank_rank": lists["pagerank_rank"][i], "n_accounts": n_accounts,
                   "weighted_in_degree": col["in_degree"][i], "followers": followers_count or 0,
                   "brand_engagement_share": lists["brand_engagement_share"][i], "net_sentiment": lists["net"][i],
                   "own_brand_share": lists["own_brand_share"][i],
                   "purchase_intent_reactions": int(lists["intent_reactions"][i])}
        named = [contribution_names[j] for j in top3[i] if contribution[i, j] > 0]
        # Buying interest is what a marketer acts on: say so whenever it was seen at all.
        if figures["purchase_intent_reactions"] and "purchase_intent_share" not in named:
            named.append("purchase_intent_share")
        if "followers" in named or followers_count is None:
            shown_followers = None  # stated once, in the reasons
        else:
            shown_followers = followers_count
        line = engagement_sentence(
            handle=handles[node] if handles else None, kind_counts=kind_counts[i], reach=col["reach"][i],
            brand_reach=col["brand_reach"][i],
            # The brand share, when it is a reason, is stated there instead.
            has_brand_signal=edges.node_source[node] in sources_with_signals and "brand_engagement_share" not in named,
            sentiment_counts=(col["positive"][i], col["neutral"][i], col["negative"][i]), out_accounts=col["out_reach"][i],
        )
        if shown_followers is not None:
            line = line[:-1] + f"; {shown_followers:,} followers."
        text = [line, reasons_sentence(named, figures)]
        if lists["leaving_reactions"][i]:
            leaving = int(lists["leaving_reactions"][i])
            text.append(f"Watch: {leaving:,} reaction{'s' if leaving != 1 else ''} to them complain or talk about leaving.")
        if lists["bot"][i] >= LIKELY_BOT:
            text.append(f"Score cut by {1 - lists['penalty'][i]:.0%}: the account looks automated.")
        shown = examples.get(node)
        if shown:
            text.append("Example posts: " + ", ".join(shown) + ".")
        explanations.append(" ".join(part for part in text if part))
        factor_json.append(json.dumps(factors, sort_keys=True))
    return explanations, factor_json


def _per_account(table: pa.Table, edges: EdgeList, ranked: np.ndarray, merge: AccountMerge,
                 examples: dict[int, list[str]]) -> tuple[pa.Table, dict[tuple[str, str], list[str]]]:
    """Return one score row per original account (a person's accounts share its figures) and examples per account."""
    position = np.full(edges.n_nodes, -1, dtype=np.int64)
    position[ranked] = np.arange(ranked.size)
    original = np.flatnonzero(position[merge.node_of] >= 0)
    original = original[np.lexsort((original, position[merge.node_of[original]]))]
    rows = position[merge.node_of[original]]
    expanded = table.take(pa.array(rows))
    sources = pa.array([merge.node_source[i] for i in original.tolist()], pa.string())
    accounts = pa.array([merge.node_account[i] for i in original.tolist()], pa.string())
    people = [merge.person[i] for i in original.tolist()]
    group_size = np.bincount(merge.node_of, minlength=edges.n_nodes)[merge.node_of[original]]
    explanations = expanded["explanation"].to_pylist()
    shared = np.flatnonzero(group_size > 1)
    together: dict[int, list[int]] = {}
    for j in original[shared].tolist():
        together.setdefault(int(merge.node_of[j]), []).append(j)
    for i in shared.tolist():
        others = [f"{merge.node_source[j]}/{merge.node_account[j]}" for j in together[int(merge.node_of[original[i]])]
                  if j != original[i]]
        explanations[i] += f" Counted as one person with {', '.join(others)} (linked in the CRM)."
    columns = {name: expanded[name] for name in expanded.column_names}
    columns.update(source=sources, account_id=accounts, rank=pa.array(np.arange(1, original.size + 1), pa.int64()),
                   explanation=pa.array(explanations, pa.string()),
                   person_id=pa.array(people, pa.string()))
    by_account = {}
    for i, node in zip(original.tolist(), merge.node_of[original].tolist()):
        if node in examples:
            by_account[(merge.node_source[i], merge.node_account[i])] = examples[node]
    return pa.table(columns), by_account


# ---- communities, bots, rising, brands -------------------------------------------------------

def _community_records(edges: EdgeList, labels: np.ndarray, node_score: np.ndarray, eligible: np.ndarray,
                       edge_brands: tuple[np.ndarray, np.ndarray, list[str]] | None,
                       handles: list[str | None] | None) -> tuple[list[Community], ArrowRows[CommunityMember]]:
    sizes = np.bincount(labels[eligible], minlength=int(labels.max()) + 1 if labels.size else 0)
    kept = np.flatnonzero(sizes >= MIN_COMMUNITY_SIZE)
    if kept.size == 0:
        return [], []
    influence = np.bincount(labels, weights=node_score, minlength=sizes.size)
    inside = labels[edges.src] == labels[edges.dst]
    community_of_edge = labels[edges.dst]
    positive = np.bincount(community_of_edge[inside & (edges.sentiment == 1)], minlength=sizes.size)
    negative = np.bincount(community_of_edge[inside & (edges.sentiment == -1)], minlength=sizes.size)
    rated = np.bincount(community_of_edge[inside & (edges.sentiment >= -1)], minlength=sizes.size)
    net = (positive - negative) / (rated + SENTIMENT_PRIOR)
    brand_counts: dict[int, dict[str, int]] = {}
    if edge_brands is not None:
        _, pairs, names = edge_brands
        if pairs.size:
            pair_inside = inside[pairs[:, 0]]
            combo = community_of_edge[pairs[pair_inside, 0]] * len(names) + pairs[pair_inside, 1]
            values, counts = np.unique(combo, return_counts=True)
            for value, count in zip(values.tolist(), counts.tolist()):
                brand_counts.setdefault(value // len(names), {})[names[value % len(names)]] = count
    members_nodes = np.flatnonzero(eligible & np.isin(labels, kept))
    member_order = members_nodes[np.lexsort((members_nodes, -node_score[members_nodes], labels[members_nodes]))]
    member_labels = labels[member_order]
    starts = np.flatnonzero(np.r_[True, member_labels[1:] != member_labels[:-1]])
    rank_in = np.arange(member_order.size) - np.repeat(starts, np.diff(np.r_[starts, member_order.size]))
    as_of = edges.as_of
    members = ArrowRows(pa.table({
        "as_of": pa.array([as_of] * member_order.size, pa.timestamp("us", tz="UTC")),
        "source": pa.array(edges.node_source, pa.string()).take(pa.array(member_order)),
        "account_id": pa.array(edges.node_account, pa.string()).take(pa.array(member_order)),
        "community_id": pa.array(member_labels, pa.int64()), "rank_in_community": pa.array(rank_in + 1, pa.int64()),
    }), CommunityMember)
    leaders: dict[int, list[int]] = {}
    for start in starts.tolist():
        label = int(member_labels[start])
        leaders[label] = member_order[start : start + COMMUNITY_LEADERS].tolist()
    communities = []
    for label in kept.tolist():
        names = [f"{edges.node_source[v]}/{edges.node_account[v]}" for v in leaders.get(label, [])]
        shown = [f"@{handles[v]}" if handles and handles[v] else names[k] for k, v in enumerate(leaders.get(label, []))]
        brands = dict(sorted(brand_counts.get(label, {}).items(), key=lambda item: (-item[1], item[0])))
        tone = "positive" if net[label] > 0.1 else "negative" if net[label] < -0.1 else "mixed or neutral"
        about = f"; talks most about {', '.join(list(brands)[:3])}" if brands else ""
        text = f"{int(sizes[label]):,} accounts led by {', '.join(shown)}{about}; tone {tone}."
        communities.append(Community(as_of, label, int(sizes[label]), float(influence[label]), names, brands,
                                     float(net[label]), text))
    return communities, members


def _bot_records(edges: EdgeList, nodes: np.ndarray, bot: np.ndarray, signals: dict[str, np.ndarray]) -> list[BotScore]:
    rows = []
    nodes = nodes[bot[nodes] >= BOT_ROWS_FROM]
    columns = {name: signals[name][nodes].tolist() for name in SIGNALS}
    for i, node in enumerate(nodes.tolist()):
        known = {name: columns[name][i] for name in SIGNALS if columns[name][i] == columns[name][i]}
        score = float(bot[node])
        if not known or score < BOT_ROWS_FROM:
            continue  # nothing known, or nothing suspicious: bot_score stays visible in the factors
        rows.append(BotScore(edges.as_of, edges.node_source[node], edges.node_account[node], score, score >= LIKELY_BOT,
                             explain_bot(score, known), known))
    return rows


def _rising_records(edges: EdgeList, ranked: np.ndarray, scores: np.ndarray, engagement: np.ndarray,
                    history: pa.Table | None) -> list[RisingInfluencer]:
    if history is None or history.num_rows == 0:
        return []
    sources = [edges.node_source[v] for v in ranked.tolist()]
    accounts = [edges.node_account[v] for v in ranked.tolist()]
    found = rise_scores(sources, accounts, scores, edges.as_of, history, engagement=engagement)
    rise, now = found["rise"], found["measured_now"]
    by_engagement = "in_degree" in history.column_names
    supported = engagement >= MIN_ENGAGEMENT if by_engagement else np.ones(scores.size, dtype=bool)
    rising = np.flatnonzero(~np.isnan(rise) & (rise >= THRESHOLD) & (now > found["previous_max"]) & supported)
    rising = rising[np.lexsort((rising, -rise[rising]))]
    rows = []
    for rank, i in enumerate(rising.tolist(), start=1):
        median = float(found["previous_median"][i])
        points = int(found["history_points"][i])
        if by_engagement:
            times = now[i] / median if median > 0 else float("inf")
            size = f"{times:.1f} times" if math.isfinite(times) else "far above"
            text = (f"Engagement {size} their usual level: {now[i]:,.0f} recent interactions against a usual {median:,.0f} "
                    f"over {points} earlier rankings.")
        else:
            text = f"Score {scores[i]:.3f} against a usual {median:.3f} over {points} earlier rankings."
        rows.append(RisingInfluencer(edges.as_of, sources[i], accounts[i], rank, float(rise[i]), float(scores[i]), median,
                                     points, text))
    return rows


def _brand_records(edges: EdgeList, edge_brands: tuple[np.ndarray, np.ndarray, list[str]] | None, eligible: np.ndarray,
                   damping: float) -> list[BrandInfluence]:
    """Return PageRank and engagement inside each brand's subgraph, for accounts engaged with about it."""
    if edge_brands is None:
        return []
    _, pairs, names = edge_brands
    rows: list[BrandInfluence] = []
    for code, brand in enumerate(names):
        chosen = pairs[pairs[:, 1] == code, 0]
        if chosen.size == 0:
            continue
        src, dst, weight = edges.src[chosen], edges.dst[chosen], edges.weight[chosen]
        local, compact = np.unique(np.concatenate((src, dst)), return_inverse=True)
        rank = weighted_pagerank(compact[: src.size], compact[src.size :], weight, local.size, damping)
        engagement = np.bincount(compact[src.size :], weights=weight, minlength=local.size)
        keep = np.flatnonzero((engagement > 0) & eligible[local])
        keep = keep[np.lexsort((keep, -rank[keep]))]
        for position, i in enumerate(keep.tolist(), start=1):
            node = int(local[i])
            rows.append(BrandInfluence(edges.as_of, brand, edges.node_source[node], edges.node_account[node], position,
                                       float(rank[i]), float(engagement[i])))
    return rows
