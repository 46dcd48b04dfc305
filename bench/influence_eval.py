"""Evaluate the influence scores on real data: human judgements, retweets, dated events.

1. PeerIndex pairs (/work/shared/data/influence_peerindex_pairs, 4,000 human judgements of
   which of two Twitter accounts is more influential): Resonanz's structural formula applied
   to the 11 features (mapping in docs/influence.md), pairwise accuracy and AUC, on all pairs
   and with account-disjoint cross-validation (graph/train_influence.py); models fitted on the
   pairs, from the formula's own weights to additive spline curves, with the same protocol.
2. Higgs (/work/shared/data/graph_higgs_twitter): PageRank, in-degree, k-core, HITS authority
   and rank_all's score against retweets received (not part of the input).
3. Influence propagation (/work/shared/data/graph_twitter_influence_propagation): daily
   rankings of 10 celebrity ego networks in one graph; does rising-influencer detection fire
   near each dated real event (hits, misses, false alarms)?
Evaluation only: none of this data is shipped with the product or its tests.
Prints a table and writes bench/results/influence_eval.json.
Usage: .venv/bin/python -m bench.influence_eval [peerindex] [higgs] [rising] [demo]   (default: all)
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from scipy.stats import spearmanr
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import SplineTransformer

from bench.graph import real_interactions
from bench.graph_eval import AS_OF as HIGGS_AS_OF
from bench.graph_eval import HIGGS, load_edges, precision_at_k, retweets_received
from bench.machine import machine_info
from graph.bots import bot_score, bot_signals
from graph.build import build_edges
from graph.influence import STRUCTURAL_TERMS, load_structural_weights, structural_score
from graph.pagerank import weighted_pagerank
from graph.ranking import BOT_PENALTY, rank_all
from graph.structure import adjacency, core_numbers, hits
from graph.top import format_top
from graph.train_influence import (
    CV_FOLDS,
    CV_REPEATS,
    FEATURES,
    PeerIndexPairs,
    fit_weights,
    grouped_cv,
    load_pairs,
    pair_metrics,
    peerindex_terms,
)
from resonanz.settings import GraphSettings

DATA = Path("/work/shared/data")
PAIRS = DATA / "influence_peerindex_pairs" / "pairs.csv"
PROPAGATION = DATA / "graph_twitter_influence_propagation"
RESULTS = Path(__file__).resolve().parent / "results" / "influence_eval.json"


# ---- 1. PeerIndex ------------------------------------------------------------------------------

PREVIOUS_WEIGHTS = {"pagerank": 0.35, "brand_pagerank": 0.15, "reach": 0.20, "in_degree": 0.20, "followers": 0.10}
SEED = 13


def _bot_penalty(features: dict[str, np.ndarray]) -> np.ndarray:
    """Return rank_all's bot factor from the signals known here: following ratio and posting rate."""
    nan = np.full(features["posts"].size, np.nan)
    signals = bot_signals(age_days=nan, posts_per_day=features["posts"], duplicate_share=nan,
                          followers=features["follower_count"], following=features["following_count"], burstiness=nan)
    return 1 - BOT_PENALTY * bot_score(signals)


def _log_ratio(top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    """Return log((1 + top) / (1 + bottom)) shifted to start at 0 and divided by its maximum."""
    ratio = np.log1p(top) - np.log1p(bottom)
    ratio = ratio - ratio.min()
    return ratio / ratio.max()


def _monotone_ramps(values: np.ndarray, segments: int = 5) -> np.ndarray:
    """Return one ramp column per quantile segment: with weights ≥ 0 a monotone piecewise-linear curve."""
    knots = np.unique(np.quantile(values, np.linspace(0, 1, segments + 1)))
    return np.column_stack([np.clip(values - low, 0, high - low) for low, high in pairwise(knots)])


def _bradley_terry(columns: np.ndarray, pairs: PeerIndexPairs) -> Callable[[np.ndarray], np.ndarray]:
    return lambda train: columns @ fit_weights(columns, pairs, train)


def _logistic(columns: np.ndarray, pairs: PeerIndexPairs) -> Callable[[np.ndarray], np.ndarray]:
    """Return a fitter of an unconstrained Bradley–Terry model (both pair orders, no intercept)."""
    def fit(train: np.ndarray) -> np.ndarray:
        diff = columns[pairs.a[train]] - columns[pairs.b[train]]
        label = pairs.a_more_influential[train]
        model = LogisticRegression(max_iter=5000, fit_intercept=False).fit(np.vstack([diff, -diff]), np.r_[label, 1 - label])
        return columns @ model.coef_[0]
    return fit


def _splines(columns: np.ndarray, pairs: PeerIndexPairs) -> Callable[[np.ndarray], np.ndarray]:
    """Return a fitter of an additive model: one spline curve per feature, knots from training accounts."""
    def fit(train: np.ndarray) -> np.ndarray:
        seen = np.unique(np.r_[pairs.a[train], pairs.b[train]])
        basis = SplineTransformer(n_knots=4, knots="quantile", extrapolation="linear").fit(columns[seen]).transform(columns)
        return _logistic(basis, pairs)(train)
    return fit


def _repeat_agreement(pairs: PeerIndexPairs) -> dict[str, float]:
    """Return how often judgements of the same two accounts agree with their majority (label noise)."""
    votes: dict[tuple[int, int], list[int]] = {}
    for a, b, choice in zip(pairs.a.tolist(), pairs.b.tolist(), pairs.a_more_influential.tolist()):
        key, vote = ((a, b), choice) if a < b else ((b, a), 1 - choice)
        votes.setdefault(key, []).append(vote)
    repeated = [v for v in votes.values() if len(v) > 1]
    judged = sum(len(v) for v in repeated)
    majority = sum(max(sum(v), len(v) - sum(v)) for v in repeated)
    return {"repeated_pairs": len(repeated), "judgements": judged, "majority_agreement": majority / judged if judged else float("nan")}


def evaluate_pairs() -> dict[str, Any]:
    pairs = load_pairs(DATA)
    f = pairs.features
    terms = peerindex_terms(f)
    fitted_names = [name for name in STRUCTURAL_TERMS if name != "brand_pagerank"]
    product = np.column_stack([terms[name] for name in fitted_names])
    ind = 0.5 * f["mentions_received"] + 2 * f["retweets_received"]
    ratios = {
        "engagement_per_activity": _log_ratio(ind, 0.5 * f["mentions_sent"] + 2 * f["retweets_sent"]),
        "engagement_per_post": _log_ratio(ind, f["posts"]),
        "listed_per_follower": _log_ratio(f["listed_count"], f["follower_count"]),
        "followers_per_following": _log_ratio(f["follower_count"], f["following_count"]),
    }
    logs = np.column_stack([np.log1p(f[name]) for name in FEATURES])
    shipped, _ = structural_score(terms)
    previous, _ = structural_score(terms, PREVIOUS_WEIGHTS)
    unfitted = {
        "follower_count": (logs[:, 0], "log follower count"),
        "listed_count": (logs[:, 2], "log listed count"),
        "previous_formula": (previous * _bot_penalty(f), "previous hand-set weights 0.35/0.20/0.20/0.10 (+ bot penalty)"),
        "resonanz_formula": (shipped, "shipped weights (graph/influence_weights.json; fitted on all pairs, so in-sample on 'all')"),
        "resonanz_formula_bot_penalty": (shipped * _bot_penalty(f), "shipped weights × rank_all's bot penalty"),
    }
    fitted = {
        "fitted_structural_weights": (_bradley_terry(product, pairs), "product terms, weights ≥ 0 refitted in each fold"),
        "plus_engagement_per_activity": (
            _bradley_terry(np.column_stack([product, ratios["engagement_per_activity"]]), pairs),
            "+ log(received / sent) term, weights ≥ 0"),
        "plus_four_ratio_terms": (
            _bradley_terry(np.column_stack([product, *ratios.values()]), pairs),
            "+ engagement per activity, per post, listed per follower, followers per following, weights ≥ 0"),
        "monotone_shape_functions": (
            _bradley_terry(np.column_stack([_monotone_ramps(terms[name]) for name in fitted_names]), pairs),
            "the product terms, each through a monotone piecewise-linear curve (5 quantile segments), weights ≥ 0"),
        "logistic_11_log_features": (_logistic(logs, pairs), "one weight per log feature, any sign"),
        "additive_splines_11_features": (_splines(logs, pairs), "one spline curve per log feature (GAM-like)"),
    }
    rows: dict[str, dict[str, Any]] = {}
    for name, (values, how) in unfitted.items():
        rows[name] = {"how": how, "fitted": False, "all_pairs": pair_metrics(pairs, values),
                      "grouped_cv": grouped_cv(pairs, lambda train, v=values: v, SEED)}
    for name, (fit, how) in fitted.items():
        rows[name] = {"how": how, "fitted": True, "grouped_cv": grouped_cv(pairs, fit, SEED)}
    # The earlier protocol, for comparison: pairs split at random, so accounts repeat across folds.
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    for name, fitter in (("logistic_11_log_features", _logistic(logs, pairs)), ("additive_splines_11_features", _splines(logs, pairs))):
        margin = np.zeros(pairs.a.size)
        for train, test in folds.split(logs[pairs.a], pairs.a_more_influential):
            mask = np.zeros(pairs.a.size, dtype=bool)
            mask[train] = True
            values = fitter(mask)
            margin[test] = values[pairs.a[test]] - values[pairs.b[test]]
        rows[name]["pair_5fold_cv_leaky"] = {"auc": float(roc_auc_score(pairs.a_more_influential, margin)),
                                             "accuracy": float(np.mean((margin > 0) == pairs.a_more_influential))}
    return {"pairs": int(pairs.a.size), "accounts": int(f[FEATURES[0]].size), "seed": SEED,
            "protocol": f"account-disjoint CV: {CV_FOLDS} account folds, test pairs have both accounts in the fold, "
                        f"train pairs neither; {CV_REPEATS} repeats, mean AUC",
            "label_noise": _repeat_agreement(pairs), "shipped_weights": load_structural_weights(), "methods": rows}


# ---- 2. Higgs ----------------------------------------------------------------------------------

def evaluate_higgs() -> dict[str, Any]:
    mention = load_edges(HIGGS / "higgs-mention_network.edgelist", "mention")
    reply = load_edges(HIGGS / "higgs-reply_network.edgelist", "reply")
    n = len(mention["src"]) + len(reply["src"])
    table = pa.table({
        "source": pa.array(["higgs"] * n), "kind": pa.array(mention["kind"] + reply["kind"]),
        "src_account_id": pa.array(mention["src"] + reply["src"]), "dst_account_id": pa.array(mention["dst"] + reply["dst"]),
        "post_id": pa.array([str(i) for i in range(n)]), "target_post_id": pa.nulls(n, pa.string()),
        "created_at": pa.array([HIGGS_AS_OF] * n, pa.timestamp("us", tz="UTC")),
    })
    settings = GraphSettings()
    started = time.perf_counter()
    result = rank_all(table, settings, as_of=HIGGS_AS_OF)
    seconds = time.perf_counter() - started
    edges = build_edges(table, settings.weights, settings.half_life_days, as_of=HIGGS_AS_OF)
    matrix = adjacency(edges.src, edges.dst, edges.weight, edges.n_nodes)
    users = np.array([int(a) for a in edges.node_account])
    truth = retweets_received()
    target = np.where(users < truth.size, truth[np.minimum(users, truth.size - 1)], 0)
    position = {(s.account_id): s.score for s in result.scores}
    methods = {
        "pagerank": weighted_pagerank(edges.src, edges.dst, edges.weight, edges.n_nodes),
        "weighted_in_degree": np.bincount(edges.dst, weights=edges.weight, minlength=edges.n_nodes),
        "k_core": core_numbers(matrix).astype(np.float64),
        "hits_authority": hits(matrix)[1],
        "resonanz_rank_all": np.array([position[a] for a in edges.node_account]),
    }
    retweeted = target > 0
    rows = {}
    for name, values in methods.items():
        # Ties (k-core has few levels) are broken by in-degree so precision@100 is well defined.
        tie_broken = values + 1e-12 * methods["weighted_in_degree"] / methods["weighted_in_degree"].max()
        rows[name] = {
            "spearman": float(spearmanr(values, target).statistic),
            "spearman_retweeted_only": float(spearmanr(values[retweeted], target[retweeted]).statistic),
            "precision_at_100": precision_at_k(tie_broken, target),
        }
    return {"interactions": n, "users": edges.n_nodes, "rank_all_seconds": round(seconds, 2),
            "communities": len(result.communities), "methods": rows}


# ---- 3. Rising influencers near dated events -----------------------------------------------

def load_propagation() -> tuple[pa.Table, dict[str, datetime]]:
    events: dict[str, datetime] = {}
    with open(PROPAGATION / "EVENTS.tsv", newline="") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            events.setdefault(row["HANDLE"], datetime.fromtimestamp(int(row["TIME"]), UTC))
    columns: dict[str, list[Any]] = {name: [] for name in ("src_account_id", "dst_account_id", "post_id", "created_at")}
    used = {}
    for path in sorted((PROPAGATION / "tweets").glob("*.txt")):
        handle_name = path.stem
        if handle_name not in events:
            continue
        used[handle_name] = events[handle_name]
        raw = np.loadtxt(path, delimiter=",", dtype=np.int64, ndmin=2)
        retweets = raw[raw[:, 2] == 1]
        for k, (stamp, node, _) in enumerate(retweets.tolist()):
            columns["src_account_id"].append(f"{handle_name}/{node}")
            columns["dst_account_id"].append(handle_name)
            columns["post_id"].append(f"{handle_name}-{k}")
            columns["created_at"].append(datetime.fromtimestamp(stamp, UTC))
    n = len(columns["post_id"])
    table = pa.table({
        "source": pa.array(["x"] * n), "kind": pa.array(["repost"] * n),
        "src_account_id": pa.array(columns["src_account_id"]), "dst_account_id": pa.array(columns["dst_account_id"]),
        "post_id": pa.array(columns["post_id"]), "target_post_id": pa.nulls(n, pa.string()),
        "created_at": pa.array(columns["created_at"], pa.timestamp("us", tz="UTC")),
    })
    return table, used


def evaluate_rising(window_days: int = 3, tolerance_days: int = 2) -> dict[str, Any]:
    table, events = load_propagation()
    settings = GraphSettings(half_life_days=1.0)
    created = np.array(table["created_at"].cast(pa.int64()).to_numpy()) / 1e6
    first = datetime.fromtimestamp(created.min(), UTC).replace(hour=0, minute=0, second=0)
    last = datetime.fromtimestamp(created.max(), UTC)
    history: list[dict[str, Any]] = []
    fired: dict[str, list[datetime]] = {handle: [] for handle in events}
    day = first + timedelta(days=window_days)
    while day <= last + timedelta(days=1):
        start = (day - timedelta(days=window_days)).timestamp()
        window = table.filter(pa.array((created > start) & (created <= day.timestamp())))
        if window.num_rows:
            result = rank_all(window, settings, history=pa.Table.from_pylist(history) if history else None, as_of=day)
            history += [{"as_of": s.as_of, "source": s.source, "account_id": s.account_id, "score": s.score} for s in result.scores]
            for rising in result.rising:
                if rising.account_id in fired:
                    fired[rising.account_id].append(day)
        day += timedelta(days=1)
    tolerance = timedelta(days=tolerance_days)
    rows = {}
    for handle, moment in sorted(events.items()):
        near = [d for d in fired[handle] if abs(d - moment) <= tolerance]
        rows[handle] = {
            "event": moment.date().isoformat(),
            "fired": [d.date().isoformat() for d in fired[handle]],
            "hit": bool(near),
            "false_alarms": len(fired[handle]) - len(near),
        }
    hits_count = sum(r["hit"] for r in rows.values())
    return {"window_days": window_days, "tolerance_days": tolerance_days, "span": [first.date().isoformat(), last.date().isoformat()],
            "events": len(rows), "hits": hits_count, "misses": len(rows) - hits_count,
            "false_alarms": sum(r["false_alarms"] for r in rows.values()), "per_account": rows}


def main(argv: list[str] | None = None) -> int:
    """Run the named parts (peerindex, higgs, rising, demo; default all), print them, update the JSON."""
    parts = set(argv or ()) or {"peerindex", "higgs", "rising", "demo"}
    # Parts not run this time keep their previous figures.
    report: dict[str, Any] = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    report["machine"] = machine_info()
    report["loadavg_start"] = Path("/proc/loadavg").read_text().split()[:3]
    if "peerindex" in parts and PAIRS.exists():
        report["peerindex"] = pairs = evaluate_pairs()
        noise = pairs["label_noise"]
        print(f"PeerIndex pairs ({pairs['pairs']:,} human judgements of {pairs['accounts']} accounts; {pairs['protocol']})")
        print(f"  label noise: {noise['repeated_pairs']} pairs judged more than once, "
              f"{noise['majority_agreement']:.3f} of their judgements agree with the majority")
        print(f"  {'method':<30}{'all pairs AUC':>14}{'grouped-CV AUC':>16}{'± sd':>7}{'accuracy':>10}{'leaky 5-fold':>14}")
        for name, row in pairs["methods"].items():
            whole = f"{row['all_pairs']['auc']:.3f}" if "all_pairs" in row else "-"
            leaky = f"{row['pair_5fold_cv_leaky']['auc']:.3f}" if "pair_5fold_cv_leaky" in row else "-"
            cv = row["grouped_cv"]
            print(f"  {name:<30}{whole:>14}{cv['auc']:>16.3f}{cv['auc_sd']:>7.3f}{cv['accuracy']:>10.3f}{leaky:>14}")
    elif "peerindex" in parts:
        print(f"{PAIRS} is absent: skipped the PeerIndex evaluation")
    if "higgs" not in parts:
        pass
    elif HIGGS.exists():
        report["higgs"] = higgs = evaluate_higgs()
        print(f"\nHiggs mention+reply graph: {higgs['interactions']:,} interactions, {higgs['users']:,} users; "
              f"rank_all {higgs['rank_all_seconds']} s")
        print(f"  {'method':<22}{'Spearman':>10}{'Spearman (RT>0)':>17}{'P@100':>8}")
        for name, row in higgs["methods"].items():
            print(f"  {name:<22}{row['spearman']:>10.3f}{row['spearman_retweeted_only']:>17.3f}{row['precision_at_100']:>8.2f}")
    else:
        print(f"{HIGGS} is absent: skipped the Higgs evaluation")
    if "rising" not in parts:
        pass
    elif PROPAGATION.exists():
        report["rising"] = rising = evaluate_rising()
        print(f"\nRising influencers vs dated events ({rising['span'][0]} .. {rising['span'][1]}, daily rankings of "
              f"{rising['window_days']}-day windows, hit = fired within ±{rising['tolerance_days']} days)")
        for handle, row in rising["per_account"].items():
            print(f"  {handle:<15} event {row['event']}  {'HIT ' if row['hit'] else 'miss'}  fired {', '.join(row['fired']) or '-'}")
        print(f"  hits {rising['hits']}/{rising['events']}, false alarms {rising['false_alarms']}")
    else:
        print(f"{PROPAGATION} is absent: skipped the rising-influencer evaluation")
    real = real_interactions() if "demo" in parts else None
    if "demo" not in parts:
        pass
    elif real is None:
        print(f"{DATA} lacks the TWCS / GermEval conversations: skipped the demo top 10")
    else:
        table, signals = real
        related = signals.filter(signals["brand_related"])
        brands = pa.table({"source": related["source"], "post_id": related["post_id"],
                           "brand": pa.array(["Deutsche Bahn"] * related.num_rows)})
        result = rank_all(table, GraphSettings(), post_signals=signals, brand_posts=brands)
        print(f"\nDemo top 10 (real TWCS + GermEval conversations, {table.num_rows:,} interactions, "
              f"{len(result.communities)} groups):")
        print(format_top(result.scores, 10))
        report["demo_top10"] = [{"rank": s.rank, "account": f"{s.source}/{s.account_id}", "score": round(s.score, 4),
                                 "explanation": s.explanation} for s in result.scores[:10]]
        report["demo_groups"] = [c.explanation for c in result.communities[:5]]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {RESULTS}")
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
