"""Time the full ranking (`graph.ranking.rank_all`) on random graphs of 1M and 10M edges.

Per step: seconds (from rank_all's own timings) and, for the whole call, the peak growth of
resident memory; PageRank against a bare scipy power iteration on the same edges in the same
run. The synthetic graphs are those of bench/graph.py (Zipf-skewed targets, 90 days).
Prints a table and writes bench/results/graph_scale.json.
Usage: .venv/bin/python -m bench.graph_scale [--sizes 1000000 10000000]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from bench.graph import AS_OF, bare_power_iteration, measure, synthetic_interactions
from bench.machine import machine_info
from graph.build import build_edges
from graph.communities import backend
from graph.pagerank import weighted_pagerank
from graph.ranking import rank_all
from resonanz.settings import GraphSettings

RESULTS = Path(__file__).resolve().parent / "results" / "graph_scale.json"
SETTINGS = GraphSettings()


def bench_size(n_edges: int) -> dict[str, Any]:
    table, generated = measure(lambda: synthetic_interactions(n_edges))
    result, total = measure(lambda: rank_all(table, SETTINGS, as_of=AS_OF))
    edges = build_edges(table, SETTINGS.weights, SETTINGS.half_life_days, as_of=AS_OF)
    matrix = sp.csr_array((edges.weight, (edges.src, edges.dst)), shape=(edges.n_nodes, edges.n_nodes))
    bare, bare_time = measure(lambda: bare_power_iteration(matrix))
    ours, ours_time = measure(lambda: weighted_pagerank(edges.src, edges.dst, edges.weight, edges.n_nodes))
    return {
        "edges": n_edges, "nodes": edges.n_nodes, "ranked": len(result.scores), "communities": len(result.communities),
        "generate_table": generated, "rank_all": total, "steps_seconds": result.timings,
        "pagerank_bare_scipy": bare_time, "pagerank_ours": ours_time,
        "pagerank_ratio_ours_to_bare": round(ours_time["seconds"] / max(bare_time["seconds"], 1e-9), 2),
        "max_abs_diff_ours_vs_bare": float(np.abs(ours - bare / bare.sum()).max()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    args = parser.parse_args()
    report: dict[str, Any] = {"machine": machine_info(), "community_backend": backend(), "sizes": []}
    for n_edges in args.sizes:
        row = bench_size(n_edges)
        report["sizes"].append(row)
        print(f"\n{n_edges:,} edges, {row['nodes']:,} nodes, {row['communities']:,} communities "
              f"({report['community_backend']})")
        print(f"  rank_all total {row['rank_all']['seconds']:.2f} s, peak +{row['rank_all']['peak_mib']:.0f} MiB")
        for name, seconds in row["steps_seconds"].items():
            print(f"    {name:<22}{seconds:>8.3f} s")
        print(f"  PageRank: ours {row['pagerank_ours']['seconds']:.3f} s vs bare scipy {row['pagerank_bare_scipy']['seconds']:.3f} s "
              f"(×{row['pagerank_ratio_ours_to_bare']}), max diff {row['max_abs_diff_ours_vs_bare']:.1e}")
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {RESULTS}")


if __name__ == "__main__":
    main()
