"""Does the influence score find the accounts that get retweeted? Higgs Twitter (SNAP).

Ranks the users of the Higgs mention + reply networks (1-7 July 2012) three ways: weighted
PageRank, weighted in-degree, and Resonanz's score; compares each to retweets received (the
independent ground truth: the retweet network is not part of the input) by Spearman rank
correlation and precision@100 (share of a method's top 100 that are among the 100 most
retweeted users of the graph). Prints a table and writes bench/results/graph_eval.json.
Reads /work/shared/data/graph_higgs_twitter and says so when it is absent.

Rising influencers (--rising, data /work/shared/data/graph_twitter_influence_propagation): the
retweets of 10 celebrities by 50 of their retweeters each, in one graph; a ranking every day
over the last 3 days (half-life 1 day), each ranking stored as history for the next, as the
flow does. An event is HIT when its celebrity is reported rising within ±2 days of the event's
date; every other day a celebrity is reported is a FALSE ALARM. The rule is the product's
(graph/rising.py), unchanged for this data.
Usage: python -m bench.graph_eval [--rising] [--higgs]
"""

from __future__ import annotations

import gzip
import json
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
from scipy.stats import spearmanr

BENCH = Path(__file__).resolve().parent
from bench.machine import machine_info
from graph.influence import rank_accounts
from resonanz.settings import GraphSettings

HIGGS = Path("/work/shared/data/graph_higgs_twitter")
RESULTS = BENCH / "results" / "graph_eval.json"
RISING_RESULTS = BENCH / "results" / "graph_eval_rising.json"
# The edge lists carry no times: every interaction is dated at as_of, so decay plays no part.
AS_OF = datetime(2012, 7, 7, tzinfo=timezone.utc)
K = 100


def load_edges(path: Path, kind: str) -> dict[str, list]:
    """Return interaction columns for an "A B count" edge list, one row per counted action."""
    raw = np.loadtxt(path, dtype=np.int64, ndmin=2)
    src, dst = np.repeat(raw[:, 0], raw[:, 2]), np.repeat(raw[:, 1], raw[:, 2])
    return {"kind": [kind] * src.size, "src": src.astype(str).tolist(), "dst": dst.astype(str).tolist()}


def retweets_received() -> np.ndarray:
    with gzip.open(HIGGS / "precomputed_retweet_scores.csv.gz", "rt") as handle:
        table = np.loadtxt(handle, delimiter=",", skiprows=1, dtype=np.int64)
    truth = np.zeros(table[:, 0].max() + 1, dtype=np.int64)
    truth[table[:, 0]] = table[:, 1]
    return truth


def precision_at_k(values: np.ndarray, truth: np.ndarray, k: int = K) -> float:
    """Share of the top k by `values` among the top k by `truth` (ties broken by position)."""
    top = np.argsort(-values, kind="stable")[:k]
    relevant = np.argsort(-truth, kind="stable")[:k]
    return len(set(top.tolist()) & set(relevant.tolist())) / k


def evaluate_rising(window_days: int = 3, tolerance_days: int = 2) -> dict:
    """Return hits, misses and false alarms of rank_all's rising detector against the dated events."""
    from datetime import timedelta

    from bench.influence_eval import PROPAGATION, load_propagation
    from graph.ranking import rank_all

    if not PROPAGATION.exists():
        print(f"{PROPAGATION} is absent: skipped the rising-influencer evaluation")
        return {}
    table, events = load_propagation()
    settings = GraphSettings(half_life_days=1.0)
    created = table["created_at"].cast(pa.int64()).to_numpy() / 1e6
    first = datetime.fromtimestamp(created.min(), timezone.utc).replace(hour=0, minute=0, second=0)
    last = datetime.fromtimestamp(created.max(), timezone.utc)
    history: list[pa.Table] = []
    fired: dict[str, list[tuple[datetime, str]]] = {handle: [] for handle in events}
    day = first + timedelta(days=window_days)
    while day <= last + timedelta(days=1):
        start = (day - timedelta(days=window_days)).timestamp()
        window = table.filter(pa.array((created > start) & (created <= day.timestamp())))
        if window.num_rows:
            result = rank_all(window, settings, history=pa.concat_tables(history) if history else None, as_of=day)
            history.append(result.scores.table.select(["as_of", "source", "account_id", "score", "in_degree"]))
            for rising in result.rising:
                if rising.account_id in fired:
                    fired[rising.account_id].append((day, rising.explanation))
        day += timedelta(days=1)
    tolerance = timedelta(days=tolerance_days)
    rows = {}
    for handle, moment in sorted(events.items()):
        near = [d for d, _ in fired[handle] if abs(d - moment) <= tolerance]
        # Consecutive alarm days are one episode, as an analyst would read them.
        far = [d for d, _ in fired[handle] if abs(d - moment) > tolerance]
        episodes = sum(1 for k, d in enumerate(far) if k == 0 or d - far[k - 1] > timedelta(days=1))
        rows[handle] = {"event": moment.date().isoformat(), "fired": [d.date().isoformat() for d, _ in fired[handle]],
                        "hit": bool(near), "false_alarms": len(far), "false_alarm_episodes": episodes,
                        "explanations": [text for _, text in fired[handle]]}
    hits_count = sum(r["hit"] for r in rows.values())
    report = {"window_days": window_days, "tolerance_days": tolerance_days, "events": len(rows), "hits": hits_count,
              "false_alarms": sum(r["false_alarms"] for r in rows.values()),
              "false_alarm_episodes": sum(r["false_alarm_episodes"] for r in rows.values()), "per_account": rows}
    print(f"Rising influencers vs dated events (daily rankings of {window_days}-day windows, hit = within ±{tolerance_days} days)")
    for handle, row in rows.items():
        print(f"  {handle:<15} event {row['event']}  {'HIT ' if row['hit'] else 'miss'}  fired {', '.join(row['fired']) or '-'}")
    print(f"  hits {hits_count}/{len(rows)}, false alarms {report['false_alarms']} days "
          f"({report['false_alarm_episodes']} episodes of consecutive days)")
    return report


def main() -> None:
    import sys

    wanted = set(sys.argv[1:]) or {"--higgs", "--rising"}
    if "--rising" in wanted:
        rising = evaluate_rising()
        if rising:
            RISING_RESULTS.write_text(json.dumps({"machine": machine_info(), **rising}, indent=2) + "\n")
            print(f"wrote {RISING_RESULTS}")
    if "--higgs" not in wanted:
        return
    if not HIGGS.exists():
        print(f"{HIGGS} is absent: nothing to evaluate (this benchmark needs the SNAP Higgs data set)")
        return
    mention = load_edges(HIGGS / "higgs-mention_network.edgelist", "mention")
    reply = load_edges(HIGGS / "higgs-reply_network.edgelist", "reply")
    n = len(mention["src"]) + len(reply["src"])
    table = pa.table({
        "source": pa.array(["higgs"] * n),
        "kind": pa.array(mention["kind"] + reply["kind"]),
        "src_account_id": pa.array(mention["src"] + reply["src"]),
        "dst_account_id": pa.array(mention["dst"] + reply["dst"]),
        "post_id": pa.array([str(i) for i in range(n)]),
        "target_post_id": pa.nulls(n, pa.string()),
        "created_at": pa.array([AS_OF] * n, pa.timestamp("us", tz="UTC")),
    })
    started = time.perf_counter()
    scores = rank_accounts(table, GraphSettings(), as_of=AS_OF)
    seconds = time.perf_counter() - started
    users = np.array([int(s.account_id) for s in scores])
    truth = retweets_received()
    target = np.where(users < truth.size, truth[np.minimum(users, truth.size - 1)], 0)
    methods = {
        "pagerank": np.array([s.pagerank for s in scores]),
        "weighted_in_degree": np.array([s.in_degree for s in scores]),
        "resonanz_score": np.array([s.score for s in scores]),
    }
    rows = {}
    for name, values in methods.items():
        rows[name] = {
            "spearman": float(spearmanr(values, target).statistic),
            f"precision_at_{K}": precision_at_k(values, target),
        }
    # Spearman over all users is dominated by the many never-retweeted ones; also report it on
    # users retweeted at least once, where the order among influencers is what counts.
    retweeted = target > 0
    for name, values in methods.items():
        rows[name]["spearman_retweeted_only"] = float(spearmanr(values[retweeted], target[retweeted]).statistic)

    print(f"Higgs mention+reply graph: {n:,} interactions, {len(scores):,} users, "
          f"{int(retweeted.sum()):,} of them retweeted at least once; ranked in {seconds:.2f} s")
    print(f"{'method':<22}{'Spearman':>10}{'Spearman (RT>0)':>17}{f'P@{K}':>8}")
    for name, row in rows.items():
        print(f"{name:<22}{row['spearman']:>10.3f}{row['spearman_retweeted_only']:>17.3f}{row[f'precision_at_{K}']:>8.2f}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "machine": machine_info(),
        "data": str(HIGGS),
        "interactions": n,
        "users": len(scores),
        "retweeted_users": int(retweeted.sum()),
        "rank_seconds": round(seconds, 3),
        "ground_truth": "retweets received (source_spreader_score), not part of the input",
        "methods": rows,
    }, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
