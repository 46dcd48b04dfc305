"""Time the demo's stages on the bundled sample: collect (fetch + parse), load, enrich, rank.

Runs the rooms' own functions without Prefect, so each figure is the stage's cost alone;
enrichment runs as the enrich task does (the configured models, in calls of POSTS_PER_CALL posts).
Prints posts/second per stage and writes bench/results/pipeline.json.
Usage: python -m bench.pipeline [--repeat N]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from contextlib import closing
from pathlib import Path

from bench.machine import machine_info  # noqa: E402

from connectors.registry import build_connector  # noqa: E402
from graph.influence import rank_accounts  # noqa: E402
from nlp.pipeline import POSTS_PER_CALL, build_enricher, models_out_of_gc  # noqa: E402
from nlp.records import PostText  # noqa: E402
from resonanz.settings import load_settings  # noqa: E402
from warehouse.db import open_warehouse  # noqa: E402
from warehouse.load import load_pages  # noqa: E402
from warehouse.graph_store import ranking_accounts, ranking_interactions, ranking_post_signals  # noqa: E402
from warehouse.stages import save_enrichment, save_scores  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "pipeline.json"


def run_once(workdir: Path) -> dict[str, dict[str, float]]:
    settings = load_settings(duckdb_path=str(workdir / "bench.duckdb"))
    stages: dict[str, dict[str, float]] = {}

    started = time.perf_counter()
    pages = [page for spec in settings.sources for page in build_connector(spec, settings).fetch(None)]
    n_posts = sum(len(p.posts) for p in pages)
    stages["collect"] = {"seconds": time.perf_counter() - started, "posts": n_posts}

    with closing(open_warehouse(settings.duckdb_path)) as con:
        started = time.perf_counter()
        load_pages(con, pages)
        stages["load"] = {"seconds": time.perf_counter() - started, "posts": n_posts}

        posts = con.execute("SELECT source, post_id, text, lang_hint FROM posts").fetchall()
        texts = [PostText(*row) for row in posts]
        # As the enrich task runs it: the configured models, POSTS_PER_CALL posts a call, the
        # models out of the garbage collector's full passes once loaded.
        enricher = build_enricher(settings.brands, settings.nlp)
        batches = [texts[start : start + POSTS_PER_CALL] for start in range(0, len(texts), POSTS_PER_CALL)]
        with models_out_of_gc() as loaded:
            enricher.enrich(texts[:1])  # load the models outside the timed part
            loaded()
            started = time.perf_counter()
            results = [enricher.enrich(batch) for batch in batches]
            stages["enrich"] = {"seconds": time.perf_counter() - started, "posts": len(texts)}
        started = time.perf_counter()
        for batch, result in zip(batches, results):
            save_enrichment(con, [(p.source, p.post_id) for p in batch], result.annotations, result.entities,
                            result.brand_mentions)
        stages["store_enrichment"] = {"seconds": time.perf_counter() - started, "posts": len(texts)}

        started = time.perf_counter()
        scores = rank_accounts(ranking_interactions(con), settings.graph, ranking_post_signals(con), ranking_accounts(con))
        stages["rank"] = {"seconds": time.perf_counter() - started, "posts": len(texts)}
        save_scores(con, scores, "bench")
    for figures in stages.values():
        figures["posts_per_second"] = figures["posts"] / figures["seconds"] if figures["seconds"] else 0.0
    return stages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3, help="runs; the best time per stage is reported")
    args = parser.parse_args()
    runs = []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            runs.append(run_once(Path(tmp)))
    best = {stage: min((r[stage] for r in runs), key=lambda f: f["seconds"]) for stage in runs[0]}
    print(f"{'stage':<18}{'posts':>8}{'seconds':>10}{'posts/s':>12}")
    for stage, f in best.items():
        print(f"{stage:<18}{int(f['posts']):>8}{f['seconds']:>10.3f}{f['posts_per_second']:>12,.0f}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"machine": machine_info(), "repeat": args.repeat, "stages": best}, indent=2))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
