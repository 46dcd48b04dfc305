"""Evaluate the influence scores on real data: human judgements, retweets, dated events.

1. PeerIndex pairs (/work/shared/data/influence_peerindex_pairs, 4,000 human judgements of
   which of two Twitter accounts is more influential): Resonanz's structural formula applied
   to the 11 features (mapping in docs/influence.md), pairwise accuracy and AUC, on all pairs
   and with account-disjoint cross-validation (graph/train_influence.py); models fitted on the
   pairs, from the formula's own weights to additive curves and a boosted-trees black box
   (the ceiling), with the same protocol and with random 10-fold CV over pairs (the Kaggle
   protocol, where test accounts also appear in training).
2. Higgs (/work/shared/data/graph_higgs_twitter): PageRank, in-degree, k-core, HITS authority
   and rank_all's score against retweets received (not part of the input).
3. Influence propagation (/work/shared/data/graph_twitter_influence_propagation): daily
   rankings of 10 celebrity ego networks in one graph; does rising-influencer detection fire
   near each dated real event (hits, misses, false alarms)?
Evaluation only: none of this data is shipped with the product or its tests.
Prints a table and writes bench/results/influence_eval.json.
Usage: .venv/bin/python -m bench.influence_eval [peerindex] [ceiling] [higgs] [rising] [demo]   (default: all;
       ceiling adds the boosted-trees rows to peerindex: over 30 min on 2 busy shared cores)
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
from sklearn.ensemble import HistGradientBoostingClassifier
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
from graph.influence import (
    STRUCTURAL_TERMS,
    load_audience_curves,
    load_structural_weights,
    structural_score,
)
from graph.pagerank import weighted_pagerank
from graph.ranking import BOT_PENALTY, rank_all
from graph.structure import adjacency, core_numbers, hits
from graph.top import format_top
from graph.train_influence import (
    CV_FOLDS,
    CV_REPEATS,
    FEATURES,
    PeerIndexPairs,
    curve_model,
    curve_scores,
    fit_curves,
    fit_weights,
    grouped_cv,
    grouped_cv_pairs,
    load_pairs,
    pair_metrics,
    peerindex_terms,
    shipped_scores,
)
from resonanz.settings import GraphSettings

DATA = Path("/work/shared/data")
PAIRS = DATA / "influence_peerindex_pairs" / "pairs.csv"
PROPAGATION = DATA / "graph_twitter_influence_propagation"
RESULTS = Path(__file__).resolve().parent / "results" / "influence_eval.json"


# ---- 1. PeerIndex ------------------------------------------------------------------------------

PREVIOUS_WEIGHTS = {"pagerank": 0.35, "brand_pagerank": 0.15, "reach": 0.20, "in_degree": 0.20, "followers": 0.10}
# The fitted weights shipped before the audience curves (same four terms, no curves).
LINEAR_WEIGHTS = {"pagerank": 0.3522, "brand_pagerank": 0.15, "reach": 0.1461, "in_degree": 0.1367, "followers": 0.215}
SEED = 13
RANDOM_FOLDS = 10
PairFit = Callable[[np.ndarray], Callable[[np.ndarray], np.ndarray]]


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


def _monotone_curves(columns: dict[str, np.ndarray], rising: set[str], pairs: PeerIndexPairs) -> Callable[[np.ndarray], np.ndarray]:
    """Return a fitter of one piecewise-linear curve (4 quartile segments) per column, rising where named."""
    blocks, bounds = [], []
    for name, values in columns.items():
        block = _monotone_ramps(values, 4)
        blocks.append(block)
        bounds += [(0.0, None) if name in rising else (None, None)] * block.shape[1]
    design = np.column_stack(blocks)
    return lambda train: design @ fit_weights(design, pairs, train, bounds, l2=0.03)


def _pair_features(logs: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Return the log differences (log ratios) and both sides' logs of the 11 features."""
    return np.hstack([logs[a] - logs[b], logs[a], logs[b]])


def _boosted_trees(logs: np.ndarray, pairs: PeerIndexPairs) -> PairFit:
    """Return a fitter of a symmetric pair black box: f(a, b) = 1 − f(b, a) by training and averaging both orders."""
    def fit(train: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        a, b, label = pairs.a[train], pairs.b[train], pairs.a_more_influential[train]
        model = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05, max_leaf_nodes=15, min_samples_leaf=40,
                                               l2_regularization=1.0, random_state=0)
        model.fit(np.vstack([_pair_features(logs, a, b), _pair_features(logs, b, a)]), np.r_[label, 1 - label])

        def margin(test: np.ndarray) -> np.ndarray:
            ta, tb = pairs.a[test], pairs.b[test]
            forward = model.predict_proba(_pair_features(logs, ta, tb))[:, 1]
            backward = model.predict_proba(_pair_features(logs, tb, ta))[:, 1]
            return (forward + 1 - backward) / 2 - 0.5
        return margin
    return fit


def _per_account(score: Callable[[np.ndarray], np.ndarray], pairs: PeerIndexPairs) -> PairFit:
    def fit(train: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        values = score(train)
        return lambda test: values[pairs.a[test]] - values[pairs.b[test]]
    return fit


def _random_pair_cv(pairs: PeerIndexPairs, fit: PairFit) -> dict[str, float]:
    """Return AUC and accuracy of random 10-fold CV over pairs (accounts recur across folds, as on Kaggle)."""
    margin = np.zeros(pairs.a.size)
    for train, test in StratifiedKFold(RANDOM_FOLDS, shuffle=True, random_state=0).split(pairs.a, pairs.a_more_influential):
        train_mask, test_mask = np.zeros(pairs.a.size, dtype=bool), np.zeros(pairs.a.size, dtype=bool)
        train_mask[train], test_mask[test] = True, True
        margin[test_mask] = fit(train_mask)(test_mask)
    return {"auc": float(roc_auc_score(pairs.a_more_influential, margin)),
            "accuracy": float(np.mean((margin > 0) == pairs.a_more_influential))}


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


def evaluate_pairs(ceiling: bool = False) -> dict[str, Any]:
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
    weights = load_structural_weights()
    shipped = shipped_scores(f, weights, load_audience_curves())
    linear_part, _ = structural_score(terms, weights)
    before_curves, _ = structural_score(terms, LINEAR_WEIGHTS)
    previous, _ = structural_score(terms, PREVIOUS_WEIGHTS)
    unfitted = {
        "follower_count": (logs[:, 0], "log follower count"),
        "listed_count": (logs[:, 2], "log listed count"),
        "previous_formula": (previous * _bot_penalty(f), "previous hand-set weights 0.35/0.20/0.20/0.10 (+ bot penalty)"),
        "formula_before_curves": (before_curves, "fitted weights shipped before the audience curves, four linear terms"),
        "resonanz_formula": (shipped, ("shipped: fitted weights + audience curves (graph/influence_weights.json; "
                                       "fitted on all pairs, so in-sample)")),
        "resonanz_formula_bot_penalty": (shipped * _bot_penalty(f), "shipped formula × rank_all's bot penalty"),
        "resonanz_formula_linear_part": (linear_part, "shipped weights without the curves (accounts without profile data)"),
    }
    # The eleven log features and four log ratios, for the most flexible additive model.
    log_ratios = {"listed_per_follower": logs[:, 2] - logs[:, 0], "mentions_per_post": logs[:, 3] - logs[:, 7],
                  "retweets_per_post": logs[:, 4] - logs[:, 7], "followers_per_following": logs[:, 0] - logs[:, 1]}
    additive = {**{name: logs[:, k] for k, name in enumerate(FEATURES)}, **log_ratios}
    rising = {"follower_count", "listed_count", "mentions_received", "retweets_received", "network_feature_1",
              "network_feature_2", "network_feature_3", *log_ratios}
    model = curve_model(f)
    fitted: dict[str, tuple[PairFit, str]] = {
        "fitted_structural_weights": (_per_account(_bradley_terry(product, pairs), pairs),
                                      "four product terms, weights ≥ 0 refitted in each fold"),
        "plus_four_ratio_terms": (
            _per_account(_bradley_terry(np.column_stack([product, *ratios.values()]), pairs), pairs),
            "+ engagement per activity, per post, listed per follower, followers per following, weights ≥ 0"),
        "monotone_shape_functions": (
            _per_account(_bradley_terry(np.column_stack([_monotone_ramps(terms[name]) for name in fitted_names]), pairs), pairs),
            "the product terms, each through a monotone piecewise-linear curve (5 quantile segments), weights ≥ 0"),
        "structural_plus_audience_curves": (
            _per_account(lambda train: curve_scores(model, fit_curves(model, pairs, train)), pairs),
            "shipped model refitted in each fold: four terms + following, posts/day, followers/following curves"),
        "curves_11_features_4_ratios": (
            _per_account(_monotone_curves(additive, rising, pairs), pairs),
            ("one curve per log feature and log ratio (listed/follower, mentions/post, retweets/post, "
             "followers/following), rising for engagement, audience and network features; ridge 0.03")),
        "logistic_11_log_features": (_per_account(_logistic(logs, pairs), pairs), "one weight per log feature, any sign"),
        "additive_splines_11_features": (_per_account(_splines(logs, pairs), pairs), "one spline curve per log feature (GAM-like)"),
    }
    if ceiling:
        fitted["boosted_trees_pairs"] = (_boosted_trees(logs, pairs),
                                         ("black box: HistGradientBoosting on log differences and both sides' logs, "
                                          "trained on both orders and averaged, so f(a, b) = 1 − f(b, a)"))
    rows: dict[str, dict[str, Any]] = {}
    for name, (values, how) in unfitted.items():
        # For a score not fitted on the pairs, random-pair CV is the all-pairs figure.
        rows[name] = {"how": how, "fitted": False, "all_pairs": pair_metrics(pairs, values),
                      "grouped_cv": grouped_cv(pairs, lambda train, v=values: v, SEED)}
    for name, (fit, how) in fitted.items():
        rows[name] = {"how": how, "fitted": True, "grouped_cv": grouped_cv_pairs(pairs, fit, SEED),
                      "random_pair_10fold": _random_pair_cv(pairs, fit)}
    return {"pairs": int(pairs.a.size), "accounts": int(f[FEATURES[0]].size), "seed": SEED,
            "protocol": f"account-disjoint CV: {CV_FOLDS} account folds, test pairs have both accounts in the fold, "
                        f"train pairs neither; {CV_REPEATS} repeats, mean AUC; random_pair_10fold: stratified "
                        f"{RANDOM_FOLDS}-fold over pairs, seed 0 (accounts recur across folds, as on Kaggle)",
            "label_noise": _repeat_agreement(pairs), "shipped_weights": weights, "methods": rows}


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
    parts = set(argv or ()) or {"peerindex", "ceiling", "higgs", "rising", "demo"}
    # Parts not run this time keep their previous figures.
    report: dict[str, Any] = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    report["machine"] = machine_info()
    report["loadavg_start"] = Path("/proc/loadavg").read_text().split()[:3]
    if "peerindex" in parts and PAIRS.exists():
        report["peerindex"] = pairs = evaluate_pairs(ceiling="ceiling" in parts)
        noise = pairs["label_noise"]
        print(f"PeerIndex pairs ({pairs['pairs']:,} human judgements of {pairs['accounts']} accounts; {pairs['protocol']})")
        print(f"  label noise: {noise['repeated_pairs']} pairs judged more than once, "
              f"{noise['majority_agreement']:.3f} of their judgements agree with the majority")
        print(f"  {'method':<32}{'all pairs AUC':>14}{'grouped-CV AUC':>16}{'± sd':>7}{'accuracy':>10}{'random 10-fold':>16}")
        for name, row in pairs["methods"].items():
            whole = f"{row['all_pairs']['auc']:.4f}" if "all_pairs" in row else "-"
            random = row.get("random_pair_10fold", row.get("all_pairs"))
            cv = row["grouped_cv"]
            print(f"  {name:<32}{whole:>14}{cv['auc']:>16.4f}{cv['auc_sd']:>7.4f}{cv['accuracy']:>10.3f}{random['auc']:>16.4f}")
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
