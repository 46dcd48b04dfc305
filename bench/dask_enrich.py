"""Enrichment fanned out with Prefect's DaskTaskRunner on a LocalCluster bound to 127.0.0.1: speed-up per worker.

    PYTHONPATH=/path/to/prefect-dask .venv/bin/python -m bench.dask_enrich --workers 1 2 --batch 128

Posts are the bundled sample (real X and feed posts, parsed by the connectors). Each Dask worker is a
process with one thread that builds the Enricher once (models load on first use) and enriches
batches; a warm-up batch per worker runs first so model loading is not timed. Prints posts/s per
worker count and the speed-up over one worker; writes bench/results/dask_enrich.json.
Needs prefect-dask and distributed (not project dependencies yet); without them, says so and exits.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="resonanz-dask-prefect-"))
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

_ENRICHER = None  # one per worker process


def sample_posts() -> list[tuple[str, str, str, str | None]]:
    """(source, post_id, text, lang_hint) for every post of the bundled sample."""
    from connectors.rss import RssConnector
    from connectors.x import XReplayConnector
    from resonanz.settings import SAMPLE_DIR

    connectors = [XReplayConnector(SAMPLE_DIR / "x_twcs_en", "en", "en"), XReplayConnector(SAMPLE_DIR / "x_germeval_db_de", "de", "de"),
                  RssConnector(str(SAMPLE_DIR / "feeds" / "feeds.opml"), "feeds", "feeds", bundled_root=SAMPLE_DIR)]
    return [(p.source, p.post_id, p.text, p.lang_hint) for c in connectors for page in c.fetch(None) for p in page.posts]


def enrich_batch(rows: list[tuple[str, str, str, str | None]]) -> int:
    """Enrich one batch in this worker; return the number of annotations made."""
    global _ENRICHER
    from nlp.pipeline import Enricher
    from nlp.records import PostText
    from resonanz.settings import load_settings

    if _ENRICHER is None:
        _ENRICHER = Enricher(load_settings().brands)
    result = _ENRICHER.enrich([PostText(*row) for row in rows])
    return len(result.annotations)


def measure(workers: int, posts: list, batch: int) -> dict[str, float]:
    from prefect import flow, task
    from prefect.cache_policies import NO_CACHE
    from prefect_dask import DaskTaskRunner

    enrich = task(enrich_batch, name="enrich_batch", cache_policy=NO_CACHE)
    batches = [posts[i : i + batch] for i in range(0, len(posts), batch)]
    runner = DaskTaskRunner(cluster_class="distributed.LocalCluster", cluster_kwargs={
        "n_workers": workers, "threads_per_worker": 1, "processes": True, "host": "127.0.0.1",
        "dashboard_address": None, "memory_limit": "2GiB",
        # One core per worker: BLAS/ONNX thread pools inside each model would otherwise fight over the cores.
        "env": {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}})

    @flow(name=f"enrich_on_{workers}_workers", task_runner=runner)
    def run() -> dict[str, float]:
        started = time.perf_counter()
        # One warm-up batch per worker (models load here); Dask may place two on one worker, so use small ones.
        [f.result() for f in [enrich.submit(posts[i * 8 : i * 8 + 8]) for i in range(workers * 3)]]
        warm = time.perf_counter() - started
        started = time.perf_counter()
        done = sum(f.result() for f in [enrich.submit(b) for b in batches])
        seconds = time.perf_counter() - started
        return {"workers": workers, "posts": len(posts), "annotations": done, "seconds": round(seconds, 2),
                "posts_per_second": round(len(posts) / seconds, 1), "warmup_seconds": round(warm, 1)}

    return run()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--limit", type=int, default=0, help="use only the first N posts (0: all)")
    args = parser.parse_args()
    try:
        import distributed  # noqa: F401
        import prefect_dask  # noqa: F401
    except ImportError:
        print("prefect-dask/distributed are not installed (pip install prefect-dask); nothing measured")
        return
    posts = sample_posts()
    posts = posts[: args.limit] if args.limit else posts
    from prefect.testing.utilities import prefect_test_harness

    results = []
    # A throw-away Prefect API (the ephemeral one times out on a busy machine).
    with prefect_test_harness(server_startup_timeout=300):
        for workers in args.workers:
            results.append(measure(workers, posts, args.batch))
    for result in results:
        workers = result["workers"]
        print(f"{workers} worker(s): {result['posts']} posts in {result['seconds']}s = {result['posts_per_second']} posts/s "
              f"(warm-up {result['warmup_seconds']}s)", flush=True)
    base = results[0]["posts_per_second"]
    for result in results:
        result["speedup"] = round(result["posts_per_second"] / base, 2)
    out = {"cpu_count": os.cpu_count(), "load_average_at_end": os.getloadavg(), "batch": args.batch, "runs": results}
    print(json.dumps(out, indent=2))
    path = ROOT / "bench" / "results" / "dask_enrich.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
