"""Measure parse + normalise speed (records/s) per bundled source by replaying its recorded pages.

Run: `.venv/bin/python -m bench.connectors [--repeat 5]` (as a module: run as a script, a file of that
name would shadow the `connectors` package). Reads only the bundled sample (no network);
prints a table and writes bench/results/connectors.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from bench.machine import machine_info
from connectors.registry import build_connector
from resonanz.settings import Settings, SourceSpec

RESULTS = Path(__file__).parent / "results" / "connectors.json"
SOURCES = [
    SourceSpec(name="x_sample_en", connector="x_replay", stream="bundled:x_twcs_en"),
    SourceSpec(name="x_sample_de", connector="x_replay", stream="bundled:x_germeval_db_de"),
    SourceSpec(name="feeds_sample", connector="rss", stream="bundled:feeds/feeds.opml"),
]


def measure(spec: SourceSpec, repeat: int) -> dict[str, float | int | str]:
    """Replay one source `repeat` times; return the best run's figures (file reads included)."""
    settings = Settings(sources=[spec])
    best = float("inf")
    counts = {}
    for _ in range(repeat):
        started = time.perf_counter()
        pages = list(build_connector(spec, settings).fetch(None))
        best = min(best, time.perf_counter() - started)
        counts = {
            "pages": len(pages),
            "posts": sum(len(p.posts) for p in pages),
            "accounts": sum(len(p.accounts) for p in pages),
            "interactions": sum(len(p.interactions) for p in pages),
            "quarantined": sum(len(p.quarantined) for p in pages),
            "raw_bytes": sum(len(p.raw.body.encode()) for p in pages),
        }
    records = counts["posts"] + counts["accounts"] + counts["interactions"]
    return {
        "source": spec.name, "connector": spec.connector, **counts, "records": records,
        "seconds": round(best, 4), "records_per_s": round(records / best), "posts_per_s": round(counts["posts"] / best),
        "mb_per_s": round(counts["raw_bytes"] / best / 1e6, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rows = [measure(spec, args.repeat) for spec in SOURCES]
    print(f"{'source':<14}{'pages':>6}{'posts':>7}{'records':>9}{'seconds':>9}{'records/s':>11}{'posts/s':>9}{'MB/s':>7}")
    for row in rows:
        print(f"{row['source']:<14}{row['pages']:>6}{row['posts']:>7}{row['records']:>9}{row['seconds']:>9}"
              f"{row['records_per_s']:>11}{row['posts_per_s']:>9}{row['mb_per_s']:>7}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "benchmark": "connectors parse+normalise (replay of bundled pages, best of repeats)",
        "repeat": args.repeat, "machine": machine_info(),
        "note": "records = posts + accounts + interactions; 2 shared cores, other jobs running",
        "results": rows,
    }, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
