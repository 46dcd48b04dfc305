"""Parquet/CSV exports and the snapshot analysts read while the pipeline writes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import pytest

from warehouse.db import WarehouseLocked, open_warehouse
from warehouse.export import export_all, open_snapshot, publish_snapshot
from warehouse.views import VIEW_NAMES

REPO = Path(__file__).resolve().parents[2]


def test_export_writes_day_partitions_and_csv(populated_copy, tmp_path):
    result = export_all(populated_copy, tmp_path / "out")
    assert set(result.rows) == {"posts"} | {v.removeprefix("v_") for v in VIEW_NAMES if v != "v_posts_enriched"}
    days = sorted(p.name for p in (tmp_path / "out" / "parquet" / "posts").iterdir())
    assert days and all(d.startswith("day=") for d in days)
    reader = duckdb.connect()
    back = reader.execute(
        f"SELECT count(*), count(DISTINCT day), count(sentiment), count(language) "
        f"FROM read_parquet('{tmp_path}/out/parquet/posts/*/*.parquet', hive_partitioning = true)").fetchall()[0]
    assert back[0] == result.rows["posts"] == 600
    assert back[1] == len(days) and back[2] == 600 and back[3] == 600
    csv_rows = reader.execute(f"SELECT count(*) FROM read_csv('{tmp_path}/out/csv/customer_timeline.csv')").fetchall()[0][0]
    assert csv_rows == result.rows["customer_timeline"] > 0
    portfolio = reader.execute(f"SELECT count(*) FROM '{tmp_path}/out/parquet/customer_portfolio.parquet'").fetchall()[0][0]
    assert portfolio == result.rows["customer_portfolio"] == 650


def test_export_replaces_the_previous_one(populated_copy, tmp_path):
    export_all(populated_copy, tmp_path / "out")
    stale = tmp_path / "out" / "parquet" / "posts" / "day=1999-01-01"
    stale.mkdir()
    (stale / "data_0.parquet").write_bytes(b"old")
    export_all(populated_copy, tmp_path / "out", formats=("parquet",))
    assert not stale.exists()
    with pytest.raises(ValueError, match="xlsx"):
        export_all(populated_copy, tmp_path / "out", formats=("xlsx",))


def test_snapshot_is_a_complete_owner_only_copy(populated_copy, tmp_path):
    path = publish_snapshot(populated_copy, tmp_path / "snap" / "resonanz.duckdb")
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    snap = open_snapshot(path)
    for view in VIEW_NAMES:
        original = populated_copy.execute(f"SELECT count(*) FROM {view}").fetchall()
        assert snap.execute(f"SELECT count(*) FROM {view}").fetchall() == original, view
    with pytest.raises(duckdb.Error):
        snap.execute("DELETE FROM posts")
    snap.close()
    with pytest.raises(FileNotFoundError, match="publishes"):
        open_snapshot(tmp_path / "nope.duckdb")


WRITER = textwrap.dedent(
    """
    import sys, time
    from datetime import UTC, datetime
    from warehouse.db import open_warehouse
    from warehouse.export import publish_snapshot
    con = open_warehouse(sys.argv[1])
    print("open", flush=True)
    for i in range(40):
        con.execute("INSERT INTO pipeline_runs VALUES (?, 'test', ?, NULL, 'running', NULL)",
                    [f"run-{i}", datetime.now(UTC)])
        if i % 10 == 9:
            publish_snapshot(con, sys.argv[2])
        time.sleep(0.02)
    print("done", con.execute("SELECT count(*) FROM pipeline_runs").fetchall()[0][0], flush=True)
    sys.stdin.readline()
    """
)


def test_reader_of_the_snapshot_and_writer_of_the_main_file_do_not_block(populated_copy, tmp_path):
    main, snap_path = tmp_path / "main.duckdb", tmp_path / "published.duckdb"
    populated_copy.execute(f"ATTACH '{main}' AS m")
    populated_copy.execute(f"COPY FROM DATABASE copy TO m")
    populated_copy.execute("DETACH m")
    first = open_warehouse(main)
    publish_snapshot(first, snap_path)
    first.close()

    reader = open_snapshot(snap_path)  # an analyst session, open the whole time
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(main), str(snap_path)], cwd=REPO,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "open"
        # While the writer holds the main file, nobody else can open it, not even read-only...
        with pytest.raises(WarehouseLocked, match="snapshot"):
            open_warehouse(main, read_only=True)
        # ...but the analyst keeps querying the snapshot while the writer inserts and re-publishes.
        queries = 0
        started = time.monotonic()
        while writer.poll() is None and queries < 200:
            assert reader.execute("SELECT count(*) FROM v_posts_enriched").fetchall()[0][0] == 600
            queries += 1
        done = writer.stdout.readline().split()
        assert done[0] == "done" and int(done[1]) == 40
        assert queries > 10 and time.monotonic() - started < 30
        # The old session still reads its snapshot; a new session sees the newest publication.
        # (DuckDB shares one open database per path within a process: close, then reopen.)
        assert reader.execute("SELECT count(*) FROM pipeline_runs").fetchall()[0][0] == 0
        reader.close()
        fresh = open_snapshot(snap_path)
        assert fresh.execute("SELECT count(*) FROM pipeline_runs").fetchall()[0][0] == 40
        fresh.close()
    finally:
        writer.communicate("\n", timeout=30)
        reader.close()
    assert writer.returncode == 0
