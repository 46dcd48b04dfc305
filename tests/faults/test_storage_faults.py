"""Storage faults: disk full, read-only file, a second writer, a crash mid-migration; the file stays usable and owner-only."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

import warehouse.db as db
from connectors.records import Cursor, Page, Post, Provenance, RawPayload
from warehouse.db import WarehouseFull, WarehouseLocked, WarehouseNotWritable, open_warehouse, schema_version
from warehouse.load import load_cursor, load_pages
from warehouse.schema import MIGRATIONS

ROOT = Path(__file__).resolve().parents[2]


def page(n: int, posts: int = 200) -> Page:
    """A page of `posts` posts with incompressible text, so the file grows with every page."""
    raw = RawPayload(Provenance("test", f"endpoint-{n}", datetime(2026, 11, 24, tzinfo=UTC), "t"), f"body {n} " * 50)
    made = Page(raw=raw, cursor=Cursor("disk", "stream", {"page": n}))
    made.posts = [Post("x", f"{n}-{i}", None, os.urandom(200).hex(), None, raw_id=raw.raw_id) for i in range(posts)]
    return made


def run(cmd: list[str]) -> bool:
    return subprocess.run(cmd, capture_output=True).returncode == 0


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """Mount a small tmpfs (needs root; skipped otherwise); the callable remounts it with extra options."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if not run(["mount", "-t", "tmpfs", "-o", "size=3m,mode=0755", "tmpfs", str(mount)]):
        pytest.skip("cannot mount a tmpfs here (not root?): disk-full and read-only-mount faults need one")

    def remount(options: str) -> Path:
        assert run(["mount", "-o", f"remount,{options}", str(mount)])
        return mount

    try:
        yield remount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_disk_full_is_a_clear_error_loses_nothing_and_retry_succeeds(tiny_disk: Callable[[str], Path]) -> None:
    disk = tiny_disk("rw")
    path = disk / "w.duckdb"
    con = open_warehouse(path)
    stored = 0
    with pytest.raises(WarehouseFull, match="is full; the batch being stored was rolled back") as caught:
        for n in range(1000):
            load_pages(con, [page(n)])
            stored = n + 1
    assert "No space left on device" in str(caught.value.__cause__)
    # Everything committed before the failure is there; the failed page left nothing behind.
    assert con.execute("SELECT count(*) FROM posts").fetchone()[0] == stored * 200
    assert load_cursor(con, "disk", "stream").state == {"page": stored - 1}
    con.close()
    tiny_disk("size=16m")  # "free some space"
    with closing(open_warehouse(path)) as again:
        load_pages(again, [page(stored)])  # the retry of the failed page now succeeds
        assert again.execute("SELECT count(*) FROM posts").fetchone()[0] == (stored + 1) * 200
        assert again.execute("SELECT count(*) - count(DISTINCT post_id) FROM posts").fetchone()[0] == 0
        assert load_cursor(again, "disk", "stream").state == {"page": stored}


def test_read_only_file_says_what_to_do_and_still_answers_queries(tiny_disk: Callable[[str], Path]) -> None:
    path = tiny_disk("rw") / "w.duckdb"
    with closing(open_warehouse(path)) as con:
        load_pages(con, [page(1, posts=10)])
    tiny_disk("ro")
    with pytest.raises(WarehouseNotWritable, match="cannot be written .*Read-only file system.*open it read-only"):
        open_warehouse(path)
    with closing(open_warehouse(path, read_only=True)) as con:
        assert con.execute("SELECT count(*) FROM posts").fetchone()[0] == 10
    tiny_disk("rw")
    with closing(open_warehouse(path)) as con:
        load_pages(con, [page(2, posts=10)])
        assert con.execute("SELECT count(*) FROM posts").fetchone()[0] == 20


def test_file_that_another_user_cannot_write_is_explained() -> None:
    folder = Path(tempfile.mkdtemp(prefix="resonanz-perm-"))  # pytest's tmp root is 0700: "nobody" could not enter
    folder.chmod(0o755)
    path = folder / "w.duckdb"
    with closing(open_warehouse(path)) as con:
        load_pages(con, [page(1, posts=5)])
    # Run as "nobody": root ignores file modes, a real user does not.
    code = textwrap.dedent(f"""
        import os
        from warehouse.db import open_warehouse, WarehouseNotWritable  # before dropping root: the venv is root's
        os.setgid(65534); os.setuid(65534)
        try:
            open_warehouse({str(path)!r})
        except WarehouseNotWritable as exc:
            print("NOT_WRITABLE", exc)
    """)
    if os.geteuid() != 0:
        pytest.skip("needs root to switch to another user")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    shutil.rmtree(folder)
    assert done.stdout.startswith("NOT_WRITABLE") and "Permission denied" in done.stdout, done.stderr[-1500:]


def test_a_second_writer_gets_a_clear_message_and_can_retry_later(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    with closing(open_warehouse(path)) as con:
        load_pages(con, [page(1, posts=5)])
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys
            from warehouse.db import open_warehouse
            con = open_warehouse({str(path)!r})
            print("holding", flush=True)
            sys.stdin.read()  # hold the write lock until the test closes stdin
            con.close()
        """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT,
    )
    try:
        assert holder.stdout.readline().strip() == "holding"  # type: ignore[union-attr]
        with pytest.raises(WarehouseLocked, match="open for writing by another process"):
            open_warehouse(path)
    finally:
        holder.communicate("", timeout=60)
    with closing(open_warehouse(path)) as con:  # the retry after the other writer finished
        load_pages(con, [page(2, posts=5)])
        assert con.execute("SELECT count(*) FROM posts").fetchone()[0] == 10


def test_warehouse_file_is_owner_only(tmp_path: Path) -> None:
    old = os.umask(0o022)  # a typical permissive umask must not leak into the file's mode
    try:
        with closing(open_warehouse(tmp_path / "nested" / "w.duckdb")) as con:
            load_pages(con, [page(1, posts=5)])
            con.execute("CHECKPOINT")  # DuckDB re-creates the WAL after a checkpoint
            load_pages(con, [page(2, posts=5)])
            wal = tmp_path / "nested" / "w.duckdb.wal"
            assert wal.exists() and stat.S_IMODE(wal.stat().st_mode) & 0o077 == 0, "the open WAL is readable by others"
    finally:
        os.umask(old)
    for file in (tmp_path / "nested").iterdir():
        assert stat.S_IMODE(file.stat().st_mode) & 0o077 == 0, f"{file.name} is readable by others"


# --- schema migrations ---------------------------------------------------------------------------

LATEST = MIGRATIONS[-1][0]


def test_migration_failing_mid_way_leaves_the_old_version_usable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "w.duckdb"
    with closing(open_warehouse(path)) as con:
        load_pages(con, [page(1, posts=5)])
    broken = (LATEST + 1, "add a table, then fail", "CREATE TABLE half_done (x INTEGER); INSERT INTO half_done VALUES (1); SELECT * FROM no_such_table")
    later = (LATEST + 2, "never reached", "CREATE TABLE later (x INTEGER)")
    monkeypatch.setattr(db, "MIGRATIONS", [*MIGRATIONS, broken, later])
    with pytest.raises(duckdb.CatalogException, match="no_such_table"):
        open_warehouse(path)
    monkeypatch.setattr(db, "MIGRATIONS", MIGRATIONS)
    with closing(open_warehouse(path)) as con:
        assert schema_version(con) == LATEST
        tables = {row[0] for row in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        assert "half_done" not in tables and "later" not in tables
        assert con.execute("SELECT count(*) FROM posts").fetchone()[0] == 5
        load_pages(con, [page(2, posts=5)])  # still usable for writing


MIGRATE_AND_SIGNAL = """
import sys
import warehouse.db as db
from warehouse.schema import MIGRATIONS
latest = MIGRATIONS[-1][0]
slow = "CREATE TABLE filler AS SELECT range AS i, md5(range::VARCHAR) AS h FROM range({rows})"
db.MIGRATIONS = [*MIGRATIONS, (latest + 1, "slow backfill", slow)]
print("migrating", flush=True)
db.open_warehouse(sys.argv[1]).close()
print("done", flush=True)
"""


def test_kill_during_a_migration_keeps_the_old_version_and_a_rerun_completes(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    with closing(open_warehouse(path)) as con:
        load_pages(con, [page(1, posts=5)])
    kills = 0
    for delay in (0.3, 0.8, 1.5):
        child = subprocess.Popen([sys.executable, "-c", MIGRATE_AND_SIGNAL.format(rows=30_000_000), str(path)],
                                 stdout=subprocess.PIPE, text=True, cwd=ROOT)
        assert child.stdout.readline().strip() == "migrating"  # type: ignore[union-attr]
        try:
            child.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            child.send_signal(signal.SIGKILL)
            child.wait()
            kills += 1
        with closing(open_warehouse(path)) as con:  # reopens (WAL replayed) at the old version
            assert schema_version(con) == LATEST
            assert con.execute("SELECT count(*) FROM posts").fetchone()[0] == 5
            assert "filler" not in {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    assert kills >= 1
    done = subprocess.run([sys.executable, "-c", MIGRATE_AND_SIGNAL.format(rows=1000), str(path)],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.stdout.split() == ["migrating", "done"], done.stderr[-1500:]
    with closing(duckdb.connect(str(path), read_only=True)) as con:
        assert con.execute("SELECT max(version) FROM schema_version").fetchone()[0] == LATEST + 1
        assert con.execute("SELECT count(*) FROM filler").fetchone()[0] == 1000
