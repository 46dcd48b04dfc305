"""The Parquet lake: every row once, idempotent rewrites, pruning by partition, and no partial partition after a crash."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import duckdb
import pytest

from warehouse.db import open_warehouse
from warehouse.lake import LAKE_TABLE_NAMES, STAGING, attach_lake, write_lake

REPO = Path(__file__).resolve().parents[2]


def files(lake: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under the lake (staging excluded): content and modification time."""
    return {
        str(path.relative_to(lake)): (path.read_bytes(), path.stat().st_mtime_ns)
        for path in sorted(lake.rglob("*")) if path.is_file() and STAGING not in path.parts
    }


def lake_count(lake: Path, view: str, where: str = "TRUE") -> int:
    con = duckdb.connect()
    attach_lake(con, lake)
    try:
        return int(con.execute(f"SELECT count(*) FROM {view} WHERE {where}").fetchone()[0])  # type: ignore[index]
    finally:
        con.close()


def test_every_row_lands_once_in_a_hive_layout(populated: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    result = write_lake(populated, lake)
    expected = {
        "posts": populated.execute("SELECT count(*) FROM posts").fetchone()[0],  # type: ignore[index]
        "interactions": populated.execute("SELECT count(*) FROM interactions").fetchone()[0],  # type: ignore[index]
        "annotations": populated.execute(
            "SELECT count(*) FROM annotations a JOIN posts p USING (source, post_id)").fetchone()[0],  # type: ignore[index]
        "accounts": populated.execute("SELECT count(*) FROM accounts").fetchone()[0],  # type: ignore[index]
    }
    assert result.rows == expected and all(n > 0 for n in expected.values())
    for table, n in expected.items():
        assert lake_count(lake, f"lake_{table}") == n
    posts_files = sorted(p.relative_to(lake).as_posix() for p in (lake / "posts").rglob("*.parquet"))
    assert posts_files and all(
        len(parts := path.split("/")) == 4 and parts[1] == "source=x" and parts[2].startswith("day=")
        and parts[3] == "part-0.parquet" for path in posts_files)
    assert result.written["posts"] == len(posts_files) > 10
    assert not (lake / STAGING).exists()
    assert all(oct(p.stat().st_mode & 0o077) == "0o0" for p in lake.rglob("*.parquet"))  # owner-only, like the warehouse
    # The rows read back are the warehouse's rows, with day and source restored from the folders.
    con = duckdb.connect()
    attach_lake(con, lake)
    con.execute("SET TimeZone = 'UTC'")
    lake_rows = con.execute(
        "SELECT source, post_id, text, day FROM lake_posts ORDER BY source, post_id").fetchall()
    stored = populated.execute(
        "SELECT source, post_id, text, CAST(timezone('UTC', coalesce(created_at, loaded_at)) AS DATE) "
        "FROM posts ORDER BY source, post_id").fetchall()
    assert lake_rows == stored
    con.close()


def test_rewriting_the_same_rows_changes_no_file(populated: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    first = write_lake(populated, lake)
    before = files(lake)
    again = write_lake(populated, lake)
    assert files(lake) == before  # same bytes, same mtimes: nothing was rewritten
    assert sum(again.written.values()) == 0 and again.unchanged == first.written
    assert lake_count(lake, "lake_posts") == first.rows["posts"]  # no duplicates


def test_changed_and_erased_days_are_rewritten_and_removed(populated_copy: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    con, lake = populated_copy, tmp_path / "lake"
    write_lake(con, lake)
    days = [row[0] for row in con.execute(
        "SELECT DISTINCT CAST(timezone('UTC', created_at) AS DATE) AS day FROM posts ORDER BY day").fetchall()]
    changed, erased, later = days[3], days[4], days[-3]
    con.execute("UPDATE posts SET text = text || ' (edited)' WHERE CAST(timezone('UTC', created_at) AS DATE) = ?", [changed])
    con.execute("DELETE FROM posts WHERE CAST(timezone('UTC', created_at) AS DATE) = ?", [erased])
    result = write_lake(con, lake, tables=("posts",))
    assert (result.written["posts"], result.removed["posts"]) == (1, 1)
    assert lake_count(lake, "lake_posts") == con.execute("SELECT count(*) FROM posts").fetchone()[0]  # type: ignore[index]
    assert lake_count(lake, "lake_posts", f"day = DATE '{erased}'") == 0
    assert lake_count(lake, "lake_posts", f"day = DATE '{changed}' AND NOT text LIKE '% (edited)'") == 0
    # A windowed run only looks at days from `since` on: older partitions are neither read nor removed.
    before = files(lake)
    con.execute("UPDATE posts SET text = text || ' (late edit)' WHERE CAST(timezone('UTC', created_at) AS DATE) IN (?, ?)",
                [days[0], later])
    windowed = write_lake(con, lake, tables=("posts",), since=later)
    assert windowed.written["posts"] == 1 and windowed.removed["posts"] == 0
    changed_files = {name for name, content in files(lake).items() if before.get(name) != content}
    assert changed_files == {f"posts/source=x/day={later}/part-0.parquet"}


def test_a_filter_on_day_or_source_prunes_whole_files(populated: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    write_lake(populated, lake, tables=("posts",))
    n_files = len(list((lake / "posts").rglob("*.parquet")))
    day = populated.execute("SELECT CAST(timezone('UTC', min(created_at)) AS DATE) FROM posts").fetchone()[0]  # type: ignore[index]
    con = duckdb.connect()
    assert attach_lake(con, lake) == ["lake_posts"]
    plan = con.execute(f"EXPLAIN SELECT post_id, text FROM lake_posts WHERE day = DATE '{day}'").fetchall()[0][1]
    assert "File Filters" in plan and f"Scanning Files: 1/{n_files}" in plan
    plan = con.execute("EXPLAIN SELECT post_id, text FROM lake_posts WHERE source = 'reddit'").fetchall()[0][1]
    assert f"Scanning Files: 0/{n_files}" in plan
    con.close()


CRASHING_WRITER = """
import sys, time
import duckdb
from warehouse.lake import write_lake

def announce(table, folder):
    print(table, folder, flush=True)
    time.sleep(0.5)  # the parent kills the process here, between two partitions

con = duckdb.connect(sys.argv[1], read_only=True)
write_lake(con, sys.argv[2], tables=("posts",), on_partition=announce)
print("done", flush=True)
"""


def test_a_killed_write_leaves_whole_partitions_and_the_next_run_finishes(populated_copy: duckdb.DuckDBPyConnection,
                                                                         tmp_path: Path) -> None:
    con, lake = populated_copy, tmp_path / "lake"
    db = Path(con.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()").fetchone()[0])  # type: ignore[index]
    write_lake(con, lake, tables=("posts",))
    total = con.execute("SELECT count(*) FROM posts").fetchone()[0]  # type: ignore[index]
    con.execute("UPDATE posts SET text = text || ' v2'")  # every partition changes
    con.close()  # one writer: the child opens the file read-only

    child = subprocess.Popen([sys.executable, "-c", CRASHING_WRITER, str(db), str(lake)], cwd=REPO,
                             stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert child.stdout is not None
    announced = [child.stdout.readline() for _ in range(3)]
    child.send_signal(signal.SIGKILL)  # no cleanup runs: a real crash
    child.wait(timeout=30)
    assert all(line.startswith("posts ") for line in announced)

    assert (lake / STAGING).exists()  # the crash left its staging folder behind ...
    reader = duckdb.connect()
    attach_lake(reader, lake)
    per_partition = reader.execute(
        "SELECT day, count(*) AS n, count(*) FILTER (WHERE text LIKE '% v2') AS v2 FROM lake_posts GROUP BY day").fetchall()
    reader.close()
    assert sum(n for _, n, _ in per_partition) == total  # ... which readers never see: no row lost or doubled
    assert all(v2 in (0, n) for _, n, v2 in per_partition)  # every partition is wholly old or wholly new
    assert sum(1 for _, n, v2 in per_partition if v2 == n) == 2  # the two moved before the kill

    with open_warehouse(db) as again:
        result = write_lake(again, lake, tables=("posts",))
    assert result.unchanged["posts"] == 2 and result.written["posts"] == len(per_partition) - 2
    assert lake_count(lake, "lake_posts", "text LIKE '% v2'") == total
    assert not (lake / STAGING).exists() and not list(lake.rglob("*.tmp"))


def test_unknown_tables_are_named(populated: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no lake layout for nonsense"):
        write_lake(populated, tmp_path / "lake", tables=("posts", "nonsense"))
    assert set(LAKE_TABLE_NAMES) == {"posts", "interactions", "annotations", "accounts"}
    assert attach_lake(duckdb.connect(), tmp_path / "empty") == []


def test_cli_writes_the_lake_and_queries_it_without_the_warehouse(populated_path: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from resonanz.cli import app

    db = tmp_path / "w.duckdb"
    db.write_bytes(populated_path.read_bytes())
    config = tmp_path / "resonanz.toml"
    config.write_text(f'duckdb_path = "{db}"\nlake_dir = "{tmp_path / "lake"}"\n', encoding="utf-8")
    runner = CliRunner()
    written = runner.invoke(app, ["lake", "write", "--config", str(config), "--table", "posts"], terminal_width=200)
    assert written.exit_code == 0, written.output
    with closing(duckdb.connect(str(db), read_only=True)) as con:
        posts = con.execute("SELECT count(*) FROM posts").fetchone()[0]  # type: ignore[index]
    assert f"posts: {posts:,} rows" in written.output
    query = runner.invoke(app, ["sql", "--lake", str(tmp_path / "lake"), "SELECT count(*) AS n FROM lake_posts"], terminal_width=200)
    assert query.exit_code == 0 and str(posts) in query.output, query.output
    again = runner.invoke(app, ["lake", "write", "--config", str(config), "--table", "posts"], terminal_width=200)
    assert again.exit_code == 0 and "0 partitions written" in again.output, again.output
    bad = runner.invoke(app, ["lake", "write", "--config", str(config), "--table", "customers"])
    assert bad.exit_code == 2 and "unknown table" in bad.output
    empty = runner.invoke(app, ["sql", "--lake", str(tmp_path / "nothing"), "SELECT 1"])
    assert empty.exit_code == 2 and "resonanz lake write" in empty.output
