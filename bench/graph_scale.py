"""Time the full ranking from DuckDB to stored scores on random graphs of 1M and 10M edges.

Steps: write the synthetic interactions into a DuckDB file (setup, not timed as part of the
ranking), read them back (`warehouse.stages.interactions_table`), `graph.ranking.rank_all`
(each of its own steps), and `warehouse.graph_store.save_ranking`. Per step: seconds and the
peak growth of resident memory over the memory at the start of the run (RSS sampled every
5 ms), so "peak" is what the process held at most during that step. PageRank is compared with
a bare scipy power iteration on the same edges in the same run. The load average is recorded:
other jobs share the 2 cores. The synthetic graphs are those of bench/graph.py.
Prints a table and writes bench/results/graph_scale.json.
Usage: .venv/bin/python -m bench.graph_scale [--sizes 1000000 10000000]
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import tempfile
import threading
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from bench.graph import (
    AS_OF,
    _rss_bytes,
    bare_power_iteration,
    measure,
    synthetic_interactions,
)
from bench.machine import machine_info
from graph.build import build_edges
from graph.communities import backend
from graph.pagerank import weighted_pagerank
from graph.ranking import rank_all
from resonanz.settings import GraphSettings
from warehouse.db import open_warehouse
from warehouse.graph_store import ranking_interactions, save_ranking

RESULTS = Path(__file__).resolve().parent / "results" / "graph_scale.json"
SETTINGS = GraphSettings()


class MemoryTrace:
    """Sample resident memory and process CPU time every 5 ms; report the peak and CPU seconds of any time span.

    CPU seconds matter on a shared machine: under a load average of 10 a step's wall time can
    be twice its CPU time, which is what the step costs on idle cores.
    """

    def __init__(self) -> None:
        self.samples: list[tuple[float, int, float]] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._done.wait(0.005):
            self.samples.append((time.perf_counter(), _rss_bytes(), time.process_time()))

    def __enter__(self) -> MemoryTrace:
        gc.collect()
        self.baseline = _rss_bytes()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._done.set()
        self._thread.join()

    def peak_mib(self, start: float, end: float) -> float:
        inside = [rss for moment, rss, _ in self.samples if start <= moment <= end] or [_rss_bytes()]
        return round((max(inside) - self.baseline) / 2**20, 1)

    def cpu_seconds(self, start: float, end: float) -> float:
        """CPU time of the process between the samples nearest to start and end (all threads)."""
        before = [cpu for moment, _, cpu in self.samples if moment <= start]
        after = [cpu for moment, _, cpu in self.samples if moment >= end]
        if not before or not after:
            return float("nan")
        return round(after[0] - before[-1], 3)


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def bench_size(n_edges: int, scratch: Path) -> dict[str, Any]:
    table, generated = measure(lambda: synthetic_interactions(n_edges))
    path = scratch / f"graph-{n_edges}.duckdb"
    with closing(open_warehouse(path)) as con:
        con.register("_synthetic", table)
        con.execute("INSERT INTO interactions SELECT source, kind, src_account_id, dst_account_id, post_id, "
                    "target_post_id, created_at, now() FROM _synthetic")
        con.unregister("_synthetic")
    del table
    spans: dict[str, tuple[float, float]] = {}
    load_before = load_average()
    with MemoryTrace() as trace, closing(open_warehouse(path)) as con:
        started = time.perf_counter()
        interactions = ranking_interactions(con)
        spans["read_interactions_duckdb"] = (started, time.perf_counter())
        result = rank_all(interactions, SETTINGS, as_of=AS_OF, on_step=lambda name, a, b: spans.__setitem__(name, (a, b)))
        saving = time.perf_counter()
        stored = save_ranking(con, result, "bench")
        spans["save_ranking_duckdb"] = (saving, time.perf_counter())
        total = (started, time.perf_counter())
    steps = {name: {"seconds": round(b - a, 3), "cpu_seconds": trace.cpu_seconds(a, b), "peak_mib": trace.peak_mib(a, b)}
             for name, (a, b) in spans.items()}
    edges = build_edges(interactions, SETTINGS.weights, SETTINGS.half_life_days, as_of=AS_OF)
    del result, interactions
    matrix = sp.csr_array((edges.weight, (edges.src, edges.dst)), shape=(edges.n_nodes, edges.n_nodes))
    bare, bare_time = measure(lambda: bare_power_iteration(matrix))
    ours, ours_time = measure(lambda: weighted_pagerank(edges.src, edges.dst, edges.weight, edges.n_nodes))
    path.unlink()
    # The sampler cannot run while igraph holds the GIL, so also report the kernel's own peak
    # (whole process, setup included: the synthetic table and the DuckDB insert).
    max_rss_mib = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return {
        "process_max_rss_mib": max_rss_mib, "baseline_rss_mib": round(trace.baseline / 2**20, 1),
        "edges": n_edges, "nodes": edges.n_nodes, "stored": stored, "generate_table": generated,
        "load_average_before": load_before, "load_average_after": load_average(),
        "total": {"seconds": round(total[1] - total[0], 3), "cpu_seconds": trace.cpu_seconds(*total),
                  "peak_mib": trace.peak_mib(*total)},
        "steps": steps,
        "pagerank_bare_scipy": bare_time, "pagerank_ours": ours_time,
        "pagerank_ratio_ours_to_bare": round(ours_time["seconds"] / max(bare_time["seconds"], 1e-9), 2),
        "max_abs_diff_ours_vs_bare": float(np.abs(ours - bare / bare.sum()).max()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    args = parser.parse_args()
    report: dict[str, Any] = {"machine": machine_info(), "community_backend": backend(), "sizes": []}
    if RESULTS.exists():
        # Sizes run separately (10M takes long on a shared machine) are kept side by side.
        report["sizes"] = [row for row in json.loads(RESULTS.read_text()).get("sizes", []) if row["edges"] not in args.sizes]
    with tempfile.TemporaryDirectory(prefix="resonanz-graph-scale-") as scratch:
        for n_edges in args.sizes:
            row = bench_size(n_edges, Path(scratch))
            report["sizes"] = sorted([*report["sizes"], row], key=lambda r: r["edges"])
            print(f"\n{n_edges:,} edges, {row['nodes']:,} nodes ({report['community_backend']}); "
                  f"load average {row['load_average_before']} -> {row['load_average_after']}")
            total = row["total"]
            print(f"  DuckDB -> scores -> DuckDB: {total['seconds']:.2f} s wall, {total['cpu_seconds']:.2f} s CPU, "
                  f"peak +{total['peak_mib']:.0f} MiB over {row['baseline_rss_mib']:.0f} MiB at the start "
                  f"(process max RSS {row['process_max_rss_mib']:.0f} MiB, setup included)")
            print(f"    {'step':<26}{'wall s':>9}{'CPU s':>9}{'peak MiB':>10}")
            for name, step in row["steps"].items():
                print(f"    {name:<26}{step['seconds']:>9.3f}{step['cpu_seconds']:>9.3f}{step['peak_mib']:>10.1f}")
            print(f"  PageRank: ours {row['pagerank_ours']['seconds']:.3f} s vs bare scipy {row['pagerank_bare_scipy']['seconds']:.3f} s "
                  f"(×{row['pagerank_ratio_ours_to_bare']}), max diff {row['max_abs_diff_ours_vs_bare']:.1e}")
            RESULTS.parent.mkdir(parents=True, exist_ok=True)
            RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {RESULTS}")


if __name__ == "__main__":
    main()
