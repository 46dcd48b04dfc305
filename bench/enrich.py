"""Throughput of `Enricher.enrich` on 1,000 real EN+DE tweets; writes bench/results/enrich.json.

Reads /work/shared/data (TWCS customer-support tweets, GermEval-2017 Deutsche Bahn tweets), or
the folder in $RESONANZ_DATA; says so and exits if it is absent.
"""

from __future__ import annotations

import csv
import json
import os
import resource
import sys
import time
import tomllib
from pathlib import Path

BENCH = Path(__file__).resolve().parent
from bench.machine import machine_info  # noqa: E402

from nlp.pipeline import Enricher  # noqa: E402
from nlp.records import PostText  # noqa: E402
from resonanz.settings import BUNDLED_DEFAULTS, Brand  # noqa: E402

DATA = Path(os.environ.get("RESONANZ_DATA", "/work/shared/data"))
RESULTS = Path(__file__).parent / "results" / "enrich.json"
PER_LANGUAGE = 500
BATCH = 100


def load_posts() -> list[PostText]:
    """Return 500 EN customer tweets (TWCS) and 500 DE tweets about Deutsche Bahn, interleaved."""
    with (DATA / "conversations_twcs_en" / "tweets.csv").open(encoding="utf-8", newline="") as handle:
        en = [PostText("x", "en" + r["tweet_id"], r["text"], None) for r in csv.DictReader(handle) if r["inbound"] == "True"]
    with (DATA / "conversations_germeval2017_db_de" / "posts.csv").open(encoding="utf-8", newline="") as handle:
        de = [PostText("x", "de" + r["post_id"], r["text"], None) for r in csv.DictReader(handle) if r["source"] == "twitter"]
    en, de = en[:PER_LANGUAGE], de[:PER_LANGUAGE]
    return [post for pair in zip(en, de) for post in pair]


def main() -> int:
    if not (DATA / "conversations_twcs_en").is_dir():
        print(f"bench/enrich.py: data folder {DATA} is absent; set RESONANZ_DATA to the shared data folder.")
        return 2
    posts = load_posts()
    brands = [Brand.model_validate(b) for b in tomllib.loads(BUNDLED_DEFAULTS.read_text())["brands"]]
    enricher = Enricher(brands)

    started = time.perf_counter()
    enricher.enrich(posts[:BATCH])  # loads every model once
    load_seconds = time.perf_counter() - started
    enricher.timings.clear()

    started = time.perf_counter()
    counts = {"annotations": 0, "entities": 0, "brand_mentions": 0}
    for i in range(0, len(posts), BATCH):
        result = enricher.enrich(posts[i : i + BATCH])
        for key in counts:
            counts[key] += len(getattr(result, key))
    seconds = time.perf_counter() - started
    model_seconds = sum(enricher.timings.values())
    report = {
        "posts": len(posts),
        "batch_size": BATCH,
        "seconds": round(seconds, 2),
        "posts_per_second": round(len(posts) / seconds, 1),
        "warmup_seconds_incl_model_load": round(load_seconds, 2),
        "share_of_time": {k: round(v / model_seconds, 3) for k, v in sorted(enricher.timings.items())},
        "seconds_per_step": {k: round(v, 2) for k, v in sorted(enricher.timings.items())},
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "rows": counts,
        "machine": machine_info(),
    }
    print(f"{report['posts']} posts in {report['seconds']} s: {report['posts_per_second']} posts/s "
          f"(batch {BATCH}; warm-up incl. model load {report['warmup_seconds_incl_model_load']} s)")
    for step, share in report["share_of_time"].items():
        print(f"  {step:<10} {share:6.1%}  {report['seconds_per_step'][step]:7.2f} s")
    print(f"peak RSS {report['peak_rss_mb']} MB; rows {counts}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
