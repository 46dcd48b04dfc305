"""Time the act room (report data, HTML render, alert rules) on the real TWCS + GermEval posts.

Reads /work/shared/data (or RESONANZ_BENCH_DATA); says so and exits when it is absent. Loads the
posts into a throw-away DuckDB warehouse, annotates them (GermEval gold sentiment, VADER for
English), tags brand mentions of the bundled demo brands, and ranks accounts by in-degree
(a stand-in for the graph room). Then it copies the posts `--scale` times to see how the
queries grow. Prints figures and writes bench/results/act_report.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from act.alerts import evaluate_alerts
from act.report import render_report, report_data
from resonanz.settings import load_settings
from warehouse.db import open_warehouse

DATA = Path(os.environ.get("RESONANZ_BENCH_DATA", "/work/shared/data"))
RESULTS = Path(__file__).with_name("results") / "act_report.json"
NOW = datetime.now(UTC)


def load_posts() -> list[dict[str, object]]:
    vader = SentimentIntensityAnalyzer()
    posts: list[dict[str, object]] = []
    for r in csv.DictReader((DATA / "conversations_twcs_en/tweets.csv").open(encoding="utf-8")):
        compound = vader.polarity_scores(r["text"])["compound"]
        posts.append({
            "post_id": r["tweet_id"], "author_id": r["author_id"], "text": r["text"],
            "created_at": datetime.strptime(r["created_at"], "%a %b %d %H:%M:%S %z %Y"), "lang": "en",
            "sentiment": "positive" if compound >= 0.05 else "negative" if compound <= -0.05 else "neutral",
            "score": abs(compound), "replies": len([x for x in r["response_tweet_id"].split(",") if x]),
        })
    for r in csv.DictReader((DATA / "conversations_germeval2017_db_de/posts.csv").open(encoding="utf-8")):
        if r["source"] != "twitter":
            continue
        posts.append({
            "post_id": r["post_id"], "author_id": r["author_handle"], "text": r["text"],
            "created_at": datetime.fromisoformat(r["created_at"].replace("Z", "+00:00")), "lang": "de",
            "sentiment": r["sentiment"], "score": 1.0, "replies": 0,
        })
    unique = {p["post_id"]: p for p in posts}  # GermEval lists a few tweets twice
    return list(unique.values())


def fill(con, posts: list[dict[str, object]], brands, scale: int) -> None:  # type: ignore[no-untyped-def]
    patterns = []
    for b in brands:
        alts = [re.escape(a) for a in b.aliases] + [f"@{re.escape(h)}" for h in b.handles]
        patterns.append((b, re.compile(rf"(?<![\w@#])(?:{'|'.join(alts)})\b", re.IGNORECASE)))
    rows, annotations, mentions = [], [], []
    for copy in range(scale):
        for p in posts:
            pid = f"{p['post_id']}-{copy}"
            rows.append(("x", pid, p["author_id"], p["text"], p["created_at"], p["replies"], NOW))
            annotations.append(("x", pid, "language", p["lang"], 1.0, "bench", "0", NOW))
            annotations.append(("x", pid, "sentiment", p["sentiment"], p["score"], "bench", "0", NOW))
            for brand, pattern in patterns:
                for m in pattern.finditer(str(p["text"])):
                    mentions.append(("x", pid, brand.name, brand.kind, m.group(0), m.start(), None))
    # Bulk insert through Arrow: executemany would dominate the run with per-row overhead.
    post_cols = ["source", "post_id", "author_id", "text", "created_at", "reply_count", "loaded_at"]
    ann_cols = ["source", "post_id", "task", "label", "score", "model_name", "model_version", "annotated_at"]
    men_cols = ["source", "post_id", "brand", "brand_kind", "matched_text", "start_char", "sentiment"]
    for table, cols, values in (("posts", post_cols, rows), ("annotations", ann_cols, annotations),
                                ("brand_mentions", men_cols, mentions)):
        arrow = pa.table({c: [v[i] for v in values] for i, c in enumerate(cols)})
        con.register("incoming", arrow)
        con.execute(f"INSERT OR IGNORE INTO {table} BY NAME SELECT * FROM incoming")
        con.unregister("incoming")
    con.execute(
        """
        INSERT INTO influence_scores (as_of, source, account_id, rank, score, explanation, run_id)
        SELECT (SELECT max(created_at) FROM posts), 'x', handle, row_number() OVER (ORDER BY n DESC, handle),
               n, 'mentioned by ' || n || ' posts (bench stand-in ranking)', 'bench'
        FROM (SELECT regexp_extract(text, '^@(\\w+)', 1) AS handle, count(*) AS n FROM posts
              WHERE regexp_matches(text, '^@\\w+') GROUP BY 1 ORDER BY n DESC LIMIT 50)
        """
    )


def timed(fn):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=20, help="copies of the posts for the scaled run")
    args = parser.parse_args()
    if not (DATA / "conversations_twcs_en/tweets.csv").exists():
        print(f"benchmark data is absent at {DATA}: set RESONANZ_BENCH_DATA to a copy; nothing measured")
        return 1
    settings = load_settings(config_file=Path("/nonexistent-resonanz.toml"))
    posts = load_posts()
    results: dict[str, object] = {"posts_base": len(posts), "brands": len(settings.brands), "runs": []}
    for scale in (1, args.scale):
        with tempfile.TemporaryDirectory() as tmp:
            con = open_warehouse(Path(tmp) / "bench.duckdb")
            _, load_s = timed(lambda: fill(con, posts, settings.brands, scale))
            data, data_s = timed(lambda: report_data(con, settings.brands))
            out, render_s = timed(lambda: render_report(con, settings.brands, Path(tmp) / "report.html"))
            alerts, alerts_s = timed(lambda: evaluate_alerts(con, settings.alerts, settings.brands))
            # The default window (last 7 days of data) is nearly empty here; also time the whole range.
            whole = data.period.start if data.period else None
            all_alerts, all_s = timed(lambda: evaluate_alerts(con, settings.alerts, settings.brands, whole))
            run = {
                "scale": scale, "posts": data.total_posts,
                "brand_mentions": con.execute("SELECT count(*) FROM brand_mentions").fetchone()[0],
                "load_s": round(load_s, 2), "report_data_s": round(data_s, 3),
                "render_report_s": round(render_s, 3), "html_bytes": out.stat().st_size,
                "evaluate_alerts_s": round(alerts_s, 3), "alerts": len(alerts),
                "alerts_by_rule": {r: sum(a.rule == r for a in alerts) for r in sorted({a.rule for a in alerts})},
                "evaluate_alerts_whole_range_s": round(all_s, 3), "alerts_whole_range": len(all_alerts),
                "alerts_whole_range_by_rule": {
                    r: sum(a.rule == r for a in all_alerts) for r in sorted({a.rule for a in all_alerts})},
            }
            con.close()
        results["runs"].append(run)  # type: ignore[union-attr]
        print(f"{run['posts']:>7} posts: report_data {run['report_data_s']:.3f}s, render_report "
              f"{run['render_report_s']:.3f}s ({run['html_bytes'] / 1024:.0f} KiB), evaluate_alerts "
              f"{run['evaluate_alerts_s']:.3f}s -> {run['alerts']} alerts; whole range "
              f"{run['evaluate_alerts_whole_range_s']:.3f}s -> {run['alerts_whole_range_by_rule']}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"measured_at": NOW.isoformat(), "cpu_count": os.cpu_count(), **results}, indent=2))
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
