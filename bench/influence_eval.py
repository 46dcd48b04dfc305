"""Evaluate the influence scores on real data: human judgements, retweets, dated events.

1. PeerIndex pairs (/work/shared/data/influence_peerindex_pairs, 4,000 human judgements of
   which of two Twitter accounts is more influential): Resonanz's buying-influence formula
   applied to the 11 features (mapping in docs/influence.md), pairwise accuracy and AUC; and
   models fitted on the pairs with 5-fold cross-validation for comparison.
2. Higgs (/work/shared/data/graph_higgs_twitter): PageRank, in-degree, k-core, HITS authority
   and rank_all's score against retweets received (not part of the input).
3. Influence propagation (/work/shared/data/graph_twitter_influence_propagation): daily
   rankings of 10 celebrity ego networks in one graph; does rising-influencer detection fire
   near each dated real event (hits, misses, false alarms)?
Evaluation only: none of this data is shipped with the product or its tests.
Prints a table and writes bench/results/influence_eval.json.
Usage: .venv/bin/python -m bench.influence_eval
"""

from __future__ import annotations

import csv
import json
import time
from datetime import datetime, timedelta, timezone
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
from graph.ranking import BOT_PENALTY, STRUCTURAL_WEIGHTS, rank_all
from graph.structure import adjacency, core_numbers, hits
from graph.pagerank import weighted_pagerank
from graph.top import format_top
from resonanz.settings import GraphSettings

DATA = Path("/work/shared/data")
PAIRS = DATA / "influence_peerindex_pairs" / "pairs.csv"
PROPAGATION = DATA / "graph_twitter_influence_propagation"
RESULTS = Path(__file__).resolve().parent / "results" / "influence_eval.json"
FEATURES = ("follower_count", "following_count", "listed_count", "mentions_received", "retweets_received",
            "mentions_sent", "retweets_sent", "posts", "network_feature_1", "network_feature_2", "network_feature_3")


# ---- 1. PeerIndex ------------------------------------------------------------------------------

def load_pairs() -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray]:
    with open(PAIRS, newline="") as handle:
        rows = list(csv.DictReader(handle))
    side = lambda s: {f: np.array([float(r[f"{s}_{f}"]) for r in rows]) for f in FEATURES}  # noqa: E731
    return side("A"), side("B"), np.array([int(r["Choice"]) for r in rows])


def resonanz_formula(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Score both sides with the product's structural formula and bot penalty, mapped onto the 11 features.

    pagerank ↦ listed_count (other people curating you: endorsement by others, recursively),
    engaging_accounts ↦ mentions_received, weighted_in_degree ↦ mentions + 2·retweets received
    (the product's kind weights), followers ↦ follower_count; brand terms are 0 (no brand data).
    Bot signals known here: follower/following ratio and posting rate.
    """
    pooled = {f: np.concatenate([a[f], b[f]]) for f in FEATURES}
    scaled = lambda v: v / v.max()  # noqa: E731  max over every account in the pairs, as in a ranking
    structural = (
        STRUCTURAL_WEIGHTS["pagerank"] * scaled(np.log1p(pooled["listed_count"]))
        + STRUCTURAL_WEIGHTS["reach"] * scaled(np.log1p(pooled["mentions_received"]))
        + STRUCTURAL_WEIGHTS["in_degree"] * scaled(np.log1p(pooled["mentions_received"] + 2 * pooled["retweets_received"]))
        + STRUCTURAL_WEIGHTS["followers"] * scaled(np.log1p(pooled["follower_count"]))
    )
    nan = np.full(structural.size, np.nan)
    signals = bot_signals(age_days=nan, posts_per_day=pooled["posts"], duplicate_share=nan,
                          followers=pooled["follower_count"], following=pooled["following_count"], burstiness=nan)
    score = structural * (1 - BOT_PENALTY * bot_score(signals))
    n = a["follower_count"].size
    return score[:n], score[n:]


def evaluate_pairs() -> dict[str, Any]:
    a, b, y = load_pairs()
    log_a = np.column_stack([np.log1p(a[f]) for f in FEATURES])
    log_b = np.column_stack([np.log1p(b[f]) for f in FEATURES])
    rows: dict[str, dict[str, float]] = {}

    def add(name: str, margin: np.ndarray, how: str) -> None:
        rows[name] = {"auc": float(roc_auc_score(y, margin)), "accuracy": float(((margin > 0) == (y == 1)).mean()), "how": how}

    add("follower_count", log_a[:, 0] - log_b[:, 0], "no fitting")
    add("listed_count", log_a[:, 2] - log_b[:, 2], "no fitting")
    score_a, score_b = resonanz_formula(a, b)
    add("resonanz_formula", score_a - score_b, "no fitting: the product's weights, mapped features")
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    margin = np.zeros(y.size)
    for train, test in folds.split(log_a, y):
        model = LogisticRegression(max_iter=5000).fit(log_a[train] - log_b[train], y[train])
        margin[test] = model.decision_function(log_a[test] - log_b[test])
    add("logistic_log_differences", margin, "5-fold CV")
    margin = np.zeros(y.size)
    for train, test in folds.split(log_a, y):
        # An additive model: one smooth curve per feature, still readable feature by feature.
        splines = SplineTransformer(n_knots=4, knots="quantile", extrapolation="linear").fit(np.vstack([log_a[train], log_b[train]]))
        diff = splines.transform(log_a) - splines.transform(log_b)
        model = LogisticRegression(max_iter=5000, fit_intercept=False).fit(diff[train], y[train])
        margin[test] = diff[test] @ model.coef_[0]
    add("additive_splines", margin, "5-fold CV")
    return {"pairs": int(y.size), "methods": rows}


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
            events.setdefault(row["HANDLE"], datetime.fromtimestamp(int(row["TIME"]), timezone.utc))
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
            columns["created_at"].append(datetime.fromtimestamp(stamp, timezone.utc))
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
    first = datetime.fromtimestamp(created.min(), timezone.utc).replace(hour=0, minute=0, second=0)
    last = datetime.fromtimestamp(created.max(), timezone.utc)
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


def main() -> None:
    report: dict[str, Any] = {"machine": machine_info()}
    if PAIRS.exists():
        report["peerindex"] = pairs = evaluate_pairs()
        print(f"PeerIndex pairs ({pairs['pairs']:,} human judgements)")
        print(f"  {'method':<28}{'AUC':>7}{'accuracy':>10}  how")
        for name, row in pairs["methods"].items():
            print(f"  {name:<28}{row['auc']:>7.3f}{row['accuracy']:>10.3f}  {row['how']}")
    else:
        print(f"{PAIRS} is absent: skipped the PeerIndex evaluation")
    if HIGGS.exists():
        report["higgs"] = higgs = evaluate_higgs()
        print(f"\nHiggs mention+reply graph: {higgs['interactions']:,} interactions, {higgs['users']:,} users; "
              f"rank_all {higgs['rank_all_seconds']} s")
        print(f"  {'method':<22}{'Spearman':>10}{'Spearman (RT>0)':>17}{'P@100':>8}")
        for name, row in higgs["methods"].items():
            print(f"  {name:<22}{row['spearman']:>10.3f}{row['spearman_retweeted_only']:>17.3f}{row['precision_at_100']:>8.2f}")
    else:
        print(f"{HIGGS} is absent: skipped the Higgs evaluation")
    if PROPAGATION.exists():
        report["rising"] = rising = evaluate_rising()
        print(f"\nRising influencers vs dated events ({rising['span'][0]} .. {rising['span'][1]}, daily rankings of "
              f"{rising['window_days']}-day windows, hit = fired within ±{rising['tolerance_days']} days)")
        for handle, row in rising["per_account"].items():
            print(f"  {handle:<15} event {row['event']}  {'HIT ' if row['hit'] else 'miss'}  fired {', '.join(row['fired']) or '-'}")
        print(f"  hits {rising['hits']}/{rising['events']}, false alarms {rising['false_alarms']}")
    else:
        print(f"{PROPAGATION} is absent: skipped the rising-influencer evaluation")
    real = real_interactions()
    if real is None:
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


if __name__ == "__main__":
    main()
