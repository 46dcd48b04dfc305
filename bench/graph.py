"""Time the rank room from an Arrow interactions table to explained scores.

Synthetic random graphs of 100k, 1M and (if the 1M run suggests it fits) 10M edges: time and
peak memory per step, bare scipy power iteration vs. ours vs. networkx (100k only). Then the
top 10 on the real TWCS + GermEval edges, when /work/shared/data is present.
Peak memory is the growth of the process's resident set during a step, sampled every 5 ms
(it includes Arrow, numpy and Python objects; memory freed and reused by an earlier step is
not counted again, so later steps can read low).
Prints a table and writes bench/results/graph.json.
Usage: python -m bench.graph [--sizes 100000 1000000 10000000] [--budget-seconds 240]
"""

from __future__ import annotations

import argparse
import csv
import gc
import json
import os
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp

BENCH = Path(__file__).resolve().parent
from bench.machine import machine_info  # noqa: E402
from connectors.records import INTERACTION_KINDS  # noqa: E402
from graph.build import build_edges  # noqa: E402
from graph.influence import rank_accounts  # noqa: E402
from graph.pagerank import weighted_pagerank  # noqa: E402
from graph.ranking import rank_all  # noqa: E402
from graph.top import format_top  # noqa: E402
from resonanz.settings import GraphSettings  # noqa: E402

RESULTS = BENCH / "results" / "graph.json"
SHARED = Path("/work/shared/data")
AS_OF = datetime(2024, 6, 1, tzinfo=timezone.utc)
SETTINGS = GraphSettings()
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def synthetic_interactions(n_edges: int, seed: int = 0) -> pa.Table:
    """Return a random interactions table: 10 edges per account, Zipf-skewed targets, 90 days."""
    rng = np.random.default_rng(seed)
    n_accounts = max(n_edges // 10, 10)
    src = rng.integers(0, n_accounts, n_edges)
    # Heavy-tailed popularity, as on social platforms: a few accounts draw most engagement.
    dst = (rng.zipf(1.8, n_edges) - 1 + rng.integers(0, n_accounts, n_edges) * (rng.random(n_edges) < 0.5)) % n_accounts
    kinds = pa.array(np.array(INTERACTION_KINDS)[rng.integers(0, len(INTERACTION_KINDS), n_edges)])
    age_us = rng.integers(0, 90 * 86_400 * 1_000_000, n_edges)
    created = pa.array(int((AS_OF - datetime(1970, 1, 1, tzinfo=timezone.utc)) / timedelta(microseconds=1)) - age_us,
                       pa.timestamp("us", tz="UTC"))
    ids = pc.cast(pa.array(np.arange(n_accounts)), pa.string())
    return pa.table({
        "source": pa.array(["x"] * n_edges, pa.string()),
        "kind": kinds,
        "src_account_id": pc.take(ids, pa.array(src)),
        "dst_account_id": pc.take(ids, pa.array(dst)),
        "post_id": pc.cast(pa.array(np.arange(n_edges)), pa.string()),
        "target_post_id": pa.nulls(n_edges, pa.string()),
        "created_at": created,
    })


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE_SIZE


def measure(step: Callable[[], Any]) -> tuple[Any, dict[str, float]]:
    """Run `step` once; return its result with seconds and peak resident-memory growth in MiB."""
    gc.collect()
    baseline = peak = _rss_bytes()
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.005):
            peak = max(peak, _rss_bytes())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    result = step()
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    peak = max(peak, _rss_bytes())
    return result, {"seconds": round(seconds, 3), "peak_mib": round((peak - baseline) / 2**20, 1)}


def bare_power_iteration(matrix: sp.csr_array, damping: float = 0.85, tol: float = 1e-10) -> np.ndarray:
    """The floor: power iteration on a ready CSR matrix, nothing else."""
    n = matrix.shape[0]
    out = np.asarray(matrix.sum(axis=1)).ravel()
    dangling = out == 0
    transition_t = (sp.diags_array(np.divide(1.0, out, out=np.zeros_like(out), where=~dangling)) @ matrix).T.tocsr()
    rank = np.full(n, 1.0 / n)
    for _ in range(1000):
        previous = rank
        rank = damping * (transition_t @ previous) + (damping * previous[dangling].sum() + 1 - damping) / n
        if np.abs(rank - previous).sum() < tol:
            break
    return rank


def bench_size(n_edges: int, with_networkx: bool) -> dict[str, Any]:
    table, timings = measure(lambda: synthetic_interactions(n_edges))
    steps: dict[str, dict[str, float]] = {"generate_table": timings}
    edges, steps["build_edges"] = measure(lambda: build_edges(table, SETTINGS.weights, SETTINGS.half_life_days, as_of=AS_OF))
    matrix = sp.csr_array((edges.weight, (edges.src, edges.dst)), shape=(edges.n_nodes, edges.n_nodes))
    bare, steps["pagerank_bare_scipy"] = measure(lambda: bare_power_iteration(matrix))
    ours, steps["pagerank_ours"] = measure(lambda: weighted_pagerank(edges.src, edges.dst, edges.weight, edges.n_nodes))
    scores, steps["rank_accounts_total"] = measure(lambda: rank_accounts(table, SETTINGS, as_of=AS_OF))
    result: dict[str, Any] = {
        "edges": n_edges,
        "nodes": edges.n_nodes,
        "ranked": len(scores),
        "steps": steps,
        "max_abs_diff_ours_vs_bare": float(np.abs(ours - bare / bare.sum()).max()),
    }
    if with_networkx:
        def networkx_pagerank() -> dict[int, float]:
            graph = nx.DiGraph()
            graph.add_nodes_from(range(edges.n_nodes))
            coo = matrix.tocoo()
            graph.add_weighted_edges_from(zip(coo.row.tolist(), coo.col.tolist(), coo.data.tolist()))
            return nx.pagerank(graph, weight="weight", tol=1e-10)

        reference, steps["pagerank_networkx"] = measure(networkx_pagerank)
        result["max_abs_diff_ours_vs_networkx"] = float(np.abs(ours - np.array([reference[i] for i in range(edges.n_nodes)])).max())
    return result


def real_interactions() -> tuple[pa.Table, pa.Table] | None:
    """Return the full TWCS + GermEval edges and GermEval gold signals, or None when absent."""
    twcs = SHARED / "conversations_twcs_en" / "edges.csv"
    germeval = SHARED / "conversations_germeval2017_db_de" / "edges.csv"
    posts = SHARED / "conversations_germeval2017_db_de" / "posts.csv"
    if not (twcs.exists() and germeval.exists() and posts.exists()):
        return None
    rows = []
    with open(twcs, newline="") as handle:
        for row in csv.DictReader(handle):
            rows.append(("twcs", row["type"], row["src_author"], row["dst_author"], row["tweet_id"],
                         row["target_tweet_id"] or None, datetime.strptime(row["created_at"], "%a %b %d %H:%M:%S %z %Y")))
    with open(germeval, newline="") as handle:
        for row in csv.DictReader(handle):
            kind = "reply" if row["type"] == "reply_mention" else "mention"  # a tweet opening with @handle
            rows.append(("germeval", kind, row["src_author"], row["dst_author"], row["post_id"], None,
                         datetime.fromisoformat(row["created_at"].replace("Z", "+00:00"))))
    columns = list(zip(*rows))
    names = ["source", "kind", "src_account_id", "dst_account_id", "post_id", "target_post_id", "created_at"]
    table = pa.table({name: pa.array(values, pa.timestamp("us", tz="UTC") if name == "created_at" else pa.string())
                      for name, values in zip(names, columns)})
    with open(posts, newline="") as handle:
        signals = [{"source": "germeval", "post_id": row["post_id"], "brand_related": row["relevance"] == "true",
                    "sentiment": row["sentiment"] or None} for row in csv.DictReader(handle) if row["source"] == "twitter"]
    return table, pa.Table.from_pylist(signals)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000, 10_000_000])
    parser.add_argument("--budget-seconds", type=float, default=240.0, help="skip a size predicted to take longer")
    args = parser.parse_args()

    report: dict[str, Any] = {"machine": machine_info(), "settings": SETTINGS.model_dump(), "sizes": [], "skipped": []}
    previous: dict[str, Any] | None = None
    for n_edges in sorted(args.sizes):
        if previous is not None:
            spent = sum(step["seconds"] for step in previous["steps"].values())
            predicted = spent * n_edges / previous["edges"]
            if predicted > args.budget_seconds:
                message = f"skipped {n_edges:,} edges: predicted {predicted:.0f} s > budget {args.budget_seconds:.0f} s"
                print(message)
                report["skipped"].append(message)
                continue
        result = bench_size(n_edges, with_networkx=n_edges <= 100_000)
        report["sizes"].append(result)
        previous = result
        print(f"\n{n_edges:,} edges, {result['nodes']:,} nodes")
        print(f"  {'step':<22}{'seconds':>9}{'peak MiB':>10}")
        for name, step in result["steps"].items():
            print(f"  {name:<22}{step['seconds']:>9.3f}{step['peak_mib']:>10.1f}")
        for key in ("max_abs_diff_ours_vs_bare", "max_abs_diff_ours_vs_networkx"):
            if key in result:
                print(f"  {key}: {result[key]:.2e}")

    real = real_interactions()
    if real is None:
        print(f"\n{SHARED} is absent: skipped the real TWCS + GermEval top 10")
        report["real"] = None
    else:
        table, signals = real
        related = signals.filter(signals["brand_related"])
        brands = pa.table({"source": related["source"], "post_id": related["post_id"],
                           "brand": pa.array(["Deutsche Bahn"] * related.num_rows)})
        result, timings = measure(lambda: rank_all(table, SETTINGS, post_signals=signals, brand_posts=brands))
        scores = result.scores
        print(f"\nReal TWCS + GermEval (full ranking with reasons): {table.num_rows:,} interactions, "
              f"{len(scores):,} accounts, {timings['seconds']:.3f} s")
        print(format_top(scores[:10], 10))
        report["real"] = {
            "interactions": table.num_rows, "accounts": len(scores), **timings,
            "top10": [{"rank": s.rank, "source": s.source, "account_id": s.account_id, "score": s.score,
                       "explanation": s.explanation} for s in scores[:10]],
        }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {RESULTS}")


if __name__ == "__main__":
    main()
