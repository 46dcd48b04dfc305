"""Load test: N posts (default 10 million) through collect → load → rank on this machine.

What runs, and what does not:

- collect: X API v2 search pages (100 tweets each, the API's maximum) are replayed from the real
  bundled sample (resonanz/sample/x_twcs_en and x_germeval_db_de: text, reply structure, mention
  counts kept) with new tweet ids, authors and mentioned accounts, serialised to JSON and parsed by
  the real connector parser `connectors.x.parse_x_page`. No HTTP: the network is not what is
  measured here (bench/connectors.py measures the clients).
- load: `warehouse.load.load_pages` (Arrow upserts of raw payloads, posts, accounts, interactions and
  the cursor, one transaction per batch) into a real DuckDB file.
- rank: the rank task's own functions (`warehouse.graph_store.ranking_interactions`,
  `ranking_post_signals`, `ranking_accounts`, `score_history` / `brand_posts`, `graph.ranking.rank_all`,
  `warehouse.graph_store.save_ranking`).
- skipped: Prefect orchestration and NLP enrichment (enrichment speed is measured by bench/enrich.py;
  docs/scale.md combines both).

Accounts and interactions are made realistic rather than uniform: there are N/8 accounts; authors are
drawn from a Zipf-like law (exponent 0.9, many accounts post once, a few post thousands of times),
mentioned accounts from a steeper one (exponent 1.1, attention is concentrated), and a reply goes to a
recent earlier post, whose author becomes the reply's target, as in a real conversation.

Usage: nice -n 10 python -m bench.load_10m [--posts 10000000] [--db /tmp/load_10m.duckdb] [--keep]
Each run replaces its size's entry in bench/results/load_10m.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from bench.machine import machine_info
from connectors.records import Cursor, Provenance
from connectors.x import VERSION as X_VERSION
from connectors.x import parse_x_page
from graph.ranking import rank_all
from resonanz.settings import SAMPLE_DIR, GraphSettings
from warehouse.db import open_warehouse, table_counts
from warehouse.graph_store import (
    brand_posts,
    ranking_accounts,
    ranking_interactions,
    ranking_post_signals,
    save_ranking,
    score_history,
)
from warehouse.lake import write_lake
from warehouse.load import load_pages

RESULTS = Path(__file__).resolve().parent / "results" / "load_10m.json"
PAGE_TWEETS = 100  # X API v2 max_results
PAGES_PER_LOAD = 100  # pages per load_pages transaction (10,000 posts)
PROGRESS_EVERY = 250_000
ACCOUNTS_PER_POST = 1 / 8
AUTHOR_EXPONENT = 0.9
MENTION_EXPONENT = 1.1
T0 = datetime(2026, 10, 1, tzinfo=UTC)
MONTH = timedelta(days=30)


class PeakMemory:
    """Sample this process's resident memory (DuckDB's buffers included) in a background thread."""

    def __init__(self, interval: float = 0.2) -> None:
        self.interval = interval
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def rss_kib() -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak_kib = max(self.peak_kib, self.rss_kib())

    def __enter__(self) -> PeakMemory:
        self.peak_kib = self.rss_kib()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_kib = max(self.peak_kib, self.rss_kib())

    @property
    def peak_mib(self) -> float:
        return round(self.peak_kib / 1024, 1)


def sample_tweets() -> list[dict[str, Any]]:
    """The real sample's tweets: text, created_at offset ignored, whether a reply, how many mentions."""
    templates = []
    for folder in ("x_twcs_en", "x_germeval_db_de"):
        for path in sorted((SAMPLE_DIR / folder).glob("page-*.json")):
            for tweet in json.loads(path.read_text(encoding="utf-8"))["data"]:
                references = tweet.get("referenced_tweets") or []
                templates.append({
                    "text": tweet["text"],
                    "lang": tweet.get("lang"),
                    "reply": any(r.get("type") == "replied_to" for r in references),
                    "mentions": [(m.get("start", 0), m.get("end", 0)) for m in (tweet.get("entities") or {}).get("mentions", [])],
                })
    if not templates:
        raise SystemExit(f"no sample tweets under {SAMPLE_DIR}; the bundled sample is missing")
    return templates


def power_law_sampler(n: int, exponent: float, rng: np.random.Generator):
    """Return draw(k) -> k account indices with P(rank r) ∝ r^-exponent, ranks shuffled over account ids."""
    cdf = np.cumsum(1.0 / np.arange(1, n + 1, dtype=np.float64) ** exponent)
    cdf /= cdf[-1]
    account_of_rank = rng.permutation(n).astype(np.int64)

    def draw(k: int) -> np.ndarray:
        return account_of_rank[np.searchsorted(cdf, rng.random(k), side="right").clip(0, n - 1)]

    return draw


@dataclass
class Replay:
    """Make X API v2 response bodies from the real sample with new ids, page by page."""

    n_posts: int
    seed: int = 13
    templates: list[dict[str, Any]] = field(default_factory=sample_tweets)

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.seed)
        self.rng = rng
        self.n_accounts = max(100, int(self.n_posts * ACCOUNTS_PER_POST))
        # One author per post up front (40 MB at 10M): a reply needs the author of the post it answers.
        self.authors = power_law_sampler(self.n_accounts, AUTHOR_EXPONENT, rng)(self.n_posts)
        self.mention = power_law_sampler(self.n_accounts, MENTION_EXPONENT, rng)
        self.step = MONTH / self.n_posts

    def body(self, page_no: int) -> str:
        """Return page `page_no` as the JSON body the X API would send."""
        first = page_no * PAGE_TWEETS
        last = min(first + PAGE_TWEETS, self.n_posts)
        data: list[dict[str, Any]] = []
        users: dict[int, dict[str, str]] = {}
        referenced: list[dict[str, str]] = []
        mention_pool = self.mention(sum(len(self.templates[i % len(self.templates)]["mentions"]) for i in range(first, last)))
        # Conversations are recent: a reply answers a post on average ~2,000 posts (a few minutes) earlier.
        reply_back = self.rng.geometric(1 / 2000, size=last - first)
        used = 0
        for offset, i in enumerate(range(first, last)):
            template = self.templates[i % len(self.templates)]
            author = int(self.authors[i])
            users[author] = _user(author)
            tweet: dict[str, Any] = {
                "id": str(i + 1), "author_id": f"u{author}", "text": template["text"],
                "created_at": (T0 + self.step * i).isoformat().replace("+00:00", "Z"),
                "conversation_id": str(i + 1),
            }
            if template["lang"]:
                tweet["lang"] = template["lang"]
            targets = [int(a) for a in mention_pool[used : used + len(template["mentions"])]]
            used += len(template["mentions"])
            if template["reply"] and i > 0:
                parent = max(0, i - int(reply_back[offset]))
                parent_author = int(self.authors[parent])
                tweet["referenced_tweets"] = [{"type": "replied_to", "id": str(parent + 1)}]
                tweet["in_reply_to_user_id"] = f"u{parent_author}"
                tweet["conversation_id"] = str(parent + 1)
                referenced.append({"id": str(parent + 1), "author_id": f"u{parent_author}"})
                users[parent_author] = _user(parent_author)
                targets = [parent_author, *targets[1:]] if targets else [parent_author]
            if targets:
                tweet["entities"] = {"mentions": [
                    {"start": start, "end": end, "username": f"user{target}"}
                    for (start, end), target in zip(template["mentions"] or [(0, 0)], targets)
                ]}
                for target in targets:
                    users[target] = _user(target)
            data.append(tweet)
        meta = {"result_count": len(data), "newest_id": data[-1]["id"], "oldest_id": data[0]["id"],
                "next_token": f"replay-{page_no + 1}"}
        return json.dumps({"data": data, "includes": {"users": list(users.values()), "tweets": referenced}, "meta": meta})


def _user(account: int) -> dict[str, str]:
    return {"id": f"u{account}", "username": f"user{account}", "name": f"User {account}"}


def collect_and_load(db: Path, replay: Replay, pages_per_load: int) -> dict[str, Any]:
    """Replay, parse and load every page; time the three apart."""
    n_pages = -(-replay.n_posts // PAGE_TWEETS)
    timings = {"replay_bodies": 0.0, "parse": 0.0, "load": 0.0}
    cpu = {"replay_bodies": 0.0, "parse": 0.0, "load": 0.0}  # process CPU seconds, all threads (DuckDB's too)
    offered = {"posts": 0, "accounts": 0, "interactions": 0, "raw_payloads": 0, "quarantine": 0}
    # Load CPU-seconds per PROGRESS_EVERY posts: flat means the load does not slow as the tables grow.
    load_cpu_per_interval: list[float] = []
    con = open_warehouse(db)
    try:
        with PeakMemory() as memory:
            batch = []
            for page_no in range(n_pages):
                started, started_cpu = time.perf_counter(), time.process_time()
                body = replay.body(page_no)
                parsed_at, parsed_cpu = time.perf_counter(), time.process_time()
                provenance = Provenance("x", "tweets/search/recent?query=replay", datetime.now(UTC), X_VERSION)
                batch.append(parse_x_page(body, provenance, Cursor("load-test", "replay", {"next_token": f"replay-{page_no + 1}"})))
                timings["replay_bodies"] += parsed_at - started
                cpu["replay_bodies"] += parsed_cpu - started_cpu
                timings["parse"] += time.perf_counter() - parsed_at
                cpu["parse"] += time.process_time() - parsed_cpu
                if len(batch) == pages_per_load or page_no == n_pages - 1:
                    started, started_cpu = time.perf_counter(), time.process_time()
                    for table, n in load_pages(con, batch).counts.items():
                        offered[table] = offered.get(table, 0) + n
                    timings["load"] += time.perf_counter() - started
                    cpu["load"] += time.process_time() - started_cpu
                    batch = []
                    done = (page_no + 1) * PAGE_TWEETS
                    if done % PROGRESS_EVERY == 0:
                        load_cpu_per_interval.append(round(cpu["load"] - sum(load_cpu_per_interval), 1))
                        print(f"  {done:,} posts loaded: load {done / timings['load']:,.0f} posts/s wall, "
                              f"{done / cpu['load']:,.0f} posts per CPU-second; parse {done / cpu['parse']:,.0f} "
                              f"posts per CPU-second; rss {PeakMemory.rss_kib() // 1024} MiB; file {file_mib(db)} MiB; "
                              f"load average {_loadavg()}", flush=True)
            started, started_cpu = time.perf_counter(), time.process_time()
            con.execute("CHECKPOINT")
            timings["checkpoint"] = time.perf_counter() - started
            cpu["checkpoint"] = time.process_time() - started_cpu
        counts = table_counts(con, ("posts", "accounts", "interactions", "raw_payloads", "quarantine"))
    finally:
        con.close()
    return {"timings": timings, "cpu": cpu, "offered": offered, "stored": counts, "peak_rss_mib": memory.peak_mib,
            "load_cpu_per_interval": load_cpu_per_interval}


def rank(db: Path) -> dict[str, Any]:
    """Run what the rank task runs: read the inputs, rank_all, save_ranking."""
    con = open_warehouse(db)
    try:
        with PeakMemory() as memory:
            started, started_cpu = time.perf_counter(), time.process_time()
            accounts = ranking_accounts(con)
            interactions = ranking_interactions(con)
            signals = ranking_post_signals(con)
            history, brands = score_history(con), brand_posts(con)
            read_s, read_cpu = time.perf_counter() - started, time.process_time() - started_cpu
            started, started_cpu = time.perf_counter(), time.process_time()
            result = rank_all(interactions, GraphSettings(), signals, accounts, history=history, brand_posts=brands)
            rank_s, rank_cpu = time.perf_counter() - started, time.process_time() - started_cpu
            edges = interactions.num_rows
            del interactions, signals, accounts
            started, started_cpu = time.perf_counter(), time.process_time()
            stored = save_ranking(con, result, "load-test")
            con.execute("CHECKPOINT")
            save_s, save_cpu = time.perf_counter() - started, time.process_time() - started_cpu
    finally:
        con.close()
    return {
        "edges": edges, "ranked_accounts": len(result.scores), "communities": len(result.communities),
        "stored": stored, "read_inputs_seconds": round(read_s, 1), "rank_all_seconds": round(rank_s, 1),
        "save_seconds": round(save_s, 1),
        "cpu_seconds": {"read_inputs": round(read_cpu, 1), "rank_all": round(rank_cpu, 1), "save": round(save_cpu, 1)},
        "rank_all_steps_seconds": result.timings, "peak_rss_mib": memory.peak_mib,
    }


def lake(db: Path, lake_dir: Path) -> dict[str, Any]:
    """Write the loaded tables to the Parquet lake (warehouse/lake.py) and measure it."""
    shutil.rmtree(lake_dir, ignore_errors=True)
    con = open_warehouse(db)
    try:
        started, started_cpu = time.perf_counter(), time.process_time()
        result = write_lake(con, lake_dir, tables=("posts", "interactions", "accounts"))
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - started_cpu
    finally:
        con.close()
    size = sum(path.stat().st_size for path in lake_dir.rglob("*.parquet"))
    return {"seconds": round(seconds, 1), "cpu_seconds": round(cpu_seconds, 1), "rows": result.rows,
            "partitions": result.written, "mib": round(size / 2**20, 1)}


def _loadavg() -> str:
    return Path("/proc/loadavg").read_text().split(" ", 3)[:3].__str__()


def file_mib(db: Path) -> float:
    size = sum(p.stat().st_size for p in (db, db.with_name(db.name + ".wal")) if p.exists())
    return round(size / 2**20, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--posts", type=int, default=10_000_000)
    parser.add_argument("--db", type=Path, default=None, help="DuckDB file to create (default /tmp/resonanz-load-<N>.duckdb)")
    parser.add_argument("--pages-per-load", type=int, default=PAGES_PER_LOAD)
    parser.add_argument("--keep", action="store_true", help="keep the DuckDB file afterwards")
    parser.add_argument("--lake", type=Path, default=None, help="also write the Parquet lake here and measure it")
    args = parser.parse_args(argv)
    db = args.db or Path(f"/tmp/resonanz-load-{args.posts}.duckdb")
    for stale in (db, db.with_name(db.name + ".wal")):
        stale.unlink(missing_ok=True)
    load_before = _loadavg()
    print(f"load test: {args.posts:,} posts into {db}; load average {load_before}", flush=True)

    started = time.perf_counter()
    replay = Replay(args.posts)
    setup_s = time.perf_counter() - started
    loaded = collect_and_load(db, replay, args.pages_per_load)
    size_after_load = file_mib(db)
    print(f"collect+load done: {json.dumps(loaded['timings'])}; file {size_after_load} MiB", flush=True)
    ranked = rank(db)
    size_after_rank = file_mib(db)
    lake_written = lake(db, args.lake) if args.lake else None
    total_s = time.perf_counter() - started
    timings, cpu = loaded["timings"], loaded["cpu"]
    collect_s = timings["replay_bodies"] + timings["parse"]
    load_cpu = cpu["load"] + cpu["checkpoint"]
    rank_cpu = sum(ranked["cpu_seconds"].values())
    n = args.posts
    run = {
        "posts": n,
        "accounts_in_replay": replay.n_accounts,
        "sample_templates": len(replay.templates),
        "pages": -(-n // PAGE_TWEETS),
        "pages_per_transaction": args.pages_per_load,
        "stored_rows": loaded["stored"],
        "collect": {
            "seconds": round(collect_s, 1), "posts_per_second": round(n / collect_s),
            "replay_bodies_seconds": round(timings["replay_bodies"], 1),
            "parse_seconds": round(timings["parse"], 1), "parse_posts_per_second": round(n / timings["parse"]),
            "cpu_seconds": {"replay_bodies": round(cpu["replay_bodies"], 1), "parse": round(cpu["parse"], 1)},
            "parse_posts_per_cpu_second": round(n / cpu["parse"]),
        },
        "load": {
            "seconds": round(timings["load"] + timings["checkpoint"], 1),
            "posts_per_second": round(n / (timings["load"] + timings["checkpoint"])),
            "rows_per_second": round(sum(loaded["stored"].values()) / (timings["load"] + timings["checkpoint"])),
            "checkpoint_seconds": round(timings["checkpoint"], 1),
            "cpu_seconds": round(load_cpu, 1),
            "posts_per_cpu_second": round(n / load_cpu),
            f"cpu_seconds_per_{PROGRESS_EVERY}_posts": loaded["load_cpu_per_interval"],
        },
        "collect_and_load_peak_rss_mib": loaded["peak_rss_mib"],
        "rank": {**ranked, "posts_per_cpu_second": round(n / rank_cpu), "posts_per_second": round(n / (ranked["read_inputs_seconds"] + ranked["rank_all_seconds"] + ranked["save_seconds"]))},
        "duckdb_mib_after_load": size_after_load,
        "duckdb_mib_after_rank": size_after_rank,
        "duckdb_bytes_per_post": round(size_after_rank * 2**20 / n),
        **({"parquet_lake": lake_written} if lake_written else {}),
        "setup_seconds": round(setup_s, 1),
        "total_seconds": round(total_s, 1),
        "peak_rss_mib_process": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "load_average_before": load_before,
        "load_average_after": _loadavg(),
        "niceness": os.nice(0),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "skipped": "Prefect orchestration, NLP enrichment (see bench/enrich.py), HTTP",
    }
    print(json.dumps(run, indent=2))
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    runs = [r for r in results.get("runs", []) if r.get("posts") != n]
    results = {"machine": machine_info(), "runs": sorted([*runs, run], key=lambda r: r["posts"])}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2))
    print(f"wrote {RESULTS}")
    if not args.keep:
        for path in (db, db.with_name(db.name + ".wal")):
            path.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
