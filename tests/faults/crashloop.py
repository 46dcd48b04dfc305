"""Kill collect+load of the bundled sample at random points, restart, repeat; then prove nothing was lost or doubled.

Run as a script for the long soak (figures to stdout and a JSON file):
    .venv/bin/python tests/faults/crashloop.py --trials 40 --kills 6 --json bench/results/fault_soak.json
The fault tests import it and run a few trials. `worker DB` is the child process that gets killed.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from connectors.base import Connector  # noqa: E402
from connectors.rss import RssConnector  # noqa: E402
from connectors.x import XReplayConnector  # noqa: E402
from resonanz.settings import SAMPLE_DIR  # noqa: E402

# (source name, stream) -> connector over the bundled sample, as defaults.toml configures it.
SOURCES = {
    ("x_sample_en", "bundled:x_twcs_en"): lambda: XReplayConnector(SAMPLE_DIR / "x_twcs_en", "x_sample_en", "bundled:x_twcs_en"),
    ("x_sample_de", "bundled:x_germeval_db_de"): lambda: XReplayConnector(
        SAMPLE_DIR / "x_germeval_db_de", "x_sample_de", "bundled:x_germeval_db_de"),
    ("feeds_sample", "bundled:feeds/feeds.opml"): lambda: RssConnector(
        str(SAMPLE_DIR / "feeds" / "feeds.opml"), "feeds_sample", "bundled:feeds/feeds.opml", bundled_root=SAMPLE_DIR),
}


def connectors() -> Iterator[tuple[str, str, Connector]]:
    for (source, stream), build in SOURCES.items():
        yield source, stream, build()


def worker(db: Path) -> None:
    """Collect every sample source from its stored cursor, one transaction per page (what the collect task does)."""
    from warehouse.db import open_warehouse
    from warehouse.load import load_cursor, load_pages

    print("ready", flush=True)  # imports done: the kill window starts here
    with closing(open_warehouse(db)) as con:
        for source, stream, connector in connectors():
            for page in connector.fetch(load_cursor(con, source, stream)):
                load_pages(con, [page])
                print(f"committed {source} {len(page.posts)}", flush=True)


_PAGES: dict[tuple[str, str], list[tuple[dict, set[str]]]] = {}


def expected_posts(source: str, stream: str, state: dict | None) -> set[str]:
    """Post ids the stored cursor says are in: every page up to and including the cursor's page."""
    if state is None:
        return set()
    if (source, stream) not in _PAGES:
        ids: set[str] = set()
        steps = []
        for page in SOURCES[(source, stream)]().fetch(None):
            ids = ids | {p.post_id for p in page.posts}
            steps.append((page.cursor.state, ids))
        _PAGES[(source, stream)] = steps
    for page_state, ids in _PAGES[(source, stream)]:
        if page_state == state:
            return ids
    raise AssertionError(f"stored cursor {state} of {source} matches no page the connector yields")


@dataclass
class Check:
    posts: int
    lost: int  # fetched-and-committed posts (per the cursor) missing from the table
    duplicates: int  # rows beyond one per (source, post_id), or posts stored beyond what the cursor covers
    cursor_problems: list[str] = field(default_factory=list)
    schema_missing: bool = False


def check(db: Path) -> Check:
    """Compare the file with what its cursors claim: exactly the pages up to each cursor, each post once."""
    import duckdb

    if not db.exists():
        return Check(0, 0, 0, schema_missing=True)  # killed before DuckDB created the file
    with closing(duckdb.connect(str(db), read_only=True)) as con:
        tables = {row[0] for row in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        if not {"posts", "cursors", "raw_payloads"} <= tables:
            # Killed while the schema was being created: nothing can have been loaded; the next open migrates.
            return Check(0, 0, 0, schema_missing=True)
        rows = con.execute("SELECT source, post_id, raw_id FROM posts").fetchall()
        dup_rows = con.execute("SELECT count(*) - count(DISTINCT (source, post_id)) FROM posts").fetchone()[0]
        cursors = {(s, t): json.loads(state) for s, t, state in con.execute("SELECT source_name, stream, state FROM cursors").fetchall()}
        raw_sources = dict(con.execute("SELECT raw_id, endpoint FROM raw_payloads").fetchall())
    problems: list[str] = []
    wanted: dict[str, set[str]] = {"x": set(), "rss": set()}
    for (source, stream), _ in SOURCES.items():
        platform = "rss" if source.startswith("feeds") else "x"
        try:
            wanted[platform] |= expected_posts(source, stream, cursors.get((source, stream)))
        except AssertionError as exc:
            problems.append(str(exc))
    stored: dict[str, set[str]] = {"x": set(), "rss": set()}
    for source, post_id, raw_id in rows:
        stored[source].add(post_id)
        if raw_id not in raw_sources:
            problems.append(f"post {post_id} points at raw payload {raw_id} that is not stored")
    lost = sum(len(wanted[k] - stored[k]) for k in wanted)
    beyond = sum(len(stored[k] - wanted[k]) for k in wanted)  # stored without the cursor covering it: a resume re-adds
    return Check(len(rows), lost, int(dup_rows) + beyond, problems)


def run_worker(db: Path, kill_after: float | None) -> tuple[int, int, float]:
    """Start the worker; SIGKILL it `kill_after` s after its imports if still running.

    Return (exit code, pages committed, seconds from ready to exit).
    """
    child = subprocess.Popen([sys.executable, __file__, "worker", str(db)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, cwd=ROOT)
    assert child.stdout is not None
    first = child.stdout.readline()  # blocks until the worker has imported everything
    ready = time.monotonic()
    try:
        out, err = child.communicate(timeout=kill_after)
    except subprocess.TimeoutExpired:
        child.send_signal(signal.SIGKILL)
        out, err = child.communicate()
    elapsed = time.monotonic() - ready
    if child.returncode not in (0, -signal.SIGKILL) or (child.returncode == 0 and first.strip() != "ready"):
        raise RuntimeError(f"worker failed with {child.returncode}: {err[-2000:]}")
    return child.returncode, out.count("committed "), elapsed


@dataclass
class Soak:
    trials: int = 0
    kills: int = 0  # SIGKILLs delivered while the worker still ran
    kills_mid_collect: int = 0  # of those, after >= 1 page committed and before the last
    kills_before_schema: int = 0  # of those, before the file had its tables (killed during creation/migration)
    runs: int = 0  # worker processes started
    posts_expected: int = 0
    lost: int = 0
    duplicates: int = 0
    cursor_problems: int = 0
    seconds: float = 0.0


def all_posts() -> set[tuple[str, str]]:
    """Every (platform, post id) the sample yields: what each trial must end with."""
    full: set[tuple[str, str]] = set()
    for source, stream in SOURCES:
        platform = "rss" if source.startswith("feeds") else "x"
        last_state = None
        for page in SOURCES[(source, stream)]().fetch(None):
            last_state = page.cursor.state
        full |= {(platform, post_id) for post_id in expected_posts(source, stream, last_state)}
    return full


def soak(trials: int, kills_per_trial: int, seed: int = 0, workdir: Path | None = None, window: float = 8.0) -> Soak:
    """Run `trials` fresh warehouses, each killed up to `kills_per_trial` times at random moments, then finished.

    Each kill lands uniformly within `window` seconds after the worker's imports (a full collect of the
    sample takes ~4 s of CPU; on a loaded machine up to ~12 s), so kills hit opening, fetching, loading and committing.
    """
    rng = random.Random(seed)
    started = time.monotonic()
    workdir = workdir or Path(tempfile.mkdtemp(prefix="resonanz-crashloop-"))
    full = all_posts()
    result = Soak(posts_expected=len(full))
    for trial in range(trials):
        db = workdir / f"trial-{trial}.duckdb"
        result.trials += 1
        for attempt in range(kills_per_trial):
            # The first kill of a trial lands early (opening, migrating, first pages) so every trial has one.
            code, committed, _ = run_worker(db, rng.uniform(0.0, window / 2 if attempt == 0 else window))
            result.runs += 1
            if code != -signal.SIGKILL:
                break
            result.kills += 1
            result.kills_mid_collect += 1 if committed else 0
            between = check(db)  # after every kill: the cursor and the rows agree
            result.kills_before_schema += 1 if between.schema_missing else 0
            result.lost += between.lost
            result.duplicates += between.duplicates
            result.cursor_problems += len(between.cursor_problems)
        code, _, _ = run_worker(db, None)  # the final, uninterrupted resume
        result.runs += 1
        assert code == 0
        final = check(db)
        import duckdb

        with closing(duckdb.connect(str(db), read_only=True)) as con:
            stored = set(con.execute("SELECT source, post_id FROM posts").fetchall())
        result.lost += final.lost + len(full - stored)
        result.duplicates += final.duplicates + len(stored - full)
        result.cursor_problems += len(final.cursor_problems)
        db.unlink()
        Path(str(db) + ".wal").unlink(missing_ok=True)
    result.seconds = round(time.monotonic() - started, 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mode", nargs="?", default="soak", choices=["soak", "worker"])
    parser.add_argument("db", nargs="?")
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--window", type=float, default=8.0, help="kill within this many seconds of start")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.mode == "worker":
        worker(Path(args.db))
        return
    result = soak(args.trials, args.kills, args.seed, window=args.window)
    print(json.dumps(asdict(result), indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(asdict(result), indent=2) + "\n")


if __name__ == "__main__":
    main()
