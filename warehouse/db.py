"""Open the DuckDB warehouse: create it owner-only, apply missing migrations, explain lock errors."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from warehouse.schema import MIGRATIONS

# DuckDB checkpoints when its WAL passes this size, and every checkpoint rewrites each changed
# table's whole primary-key index. At DuckDB's 16 MB default a bulk load checkpoints every few
# batches, so loading slows down as the tables grow (bench/load_10m.py: 28 -> 80 CPU-s per 250k
# posts by 1.5M). At 1 GB the growth is gone for a bounded cost: up to ~1.5 GB more memory between
# checkpoints and a longer WAL replay after a crash. See docs/scale.md.
CHECKPOINT_THRESHOLD_SQL = "SET checkpoint_threshold = '1GB'"


class WarehouseLocked(RuntimeError):
    """Another process holds the DuckDB file open for writing."""


class WarehouseNotWritable(RuntimeError):
    """The DuckDB file or its folder cannot be written (read-only mount, permissions)."""


class WarehouseFull(RuntimeError):
    """The disk holding the DuckDB file ran out of space; the interrupted transaction was not stored."""


def _disk_full(exc: BaseException, path: str) -> WarehouseFull | None:
    if isinstance(exc, duckdb.Error) and "no space left on device" in str(exc).lower():
        return WarehouseFull(
            f"the disk holding {path} is full; the batch being stored was rolled back and nothing earlier is lost. "
            "Free some space and run again (collection resumes from the stored cursors)."
        )
    return None


def _connect(path: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
    try:
        return duckdb.connect(str(path), read_only=read_only)
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise WarehouseLocked(
                f"{path} is open for writing by another process (DuckDB allows one writer). "
                "Wait for the running pipeline to finish, or query a published snapshot "
                "(see docs/queries.md)."
            ) from exc
        message = str(exc).lower()
        if not read_only and ("read-only file system" in message or "permission denied" in message):
            raise WarehouseNotWritable(
                f"{path} cannot be written ({exc}). Check the file's permissions and that its disk is "
                "mounted read-write; to query it as it is, open it read-only."
            ) from exc
        raise


def open_warehouse(path: Path | str, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Connect to the warehouse file, creating it and migrating it to the latest schema."""
    path = Path(path)
    if read_only:
        return _connect(path, read_only=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        # Create the file owner-only before DuckDB writes anything into it.
        path.touch(mode=0o600)
        path.unlink()
        old_umask = os.umask(0o077)
        try:
            con = _connect(path, read_only=False)
        finally:
            os.umask(old_umask)
    else:
        con = _connect(path, read_only=False)
    # DuckDB deletes and re-creates its WAL beside the file at every checkpoint, with the process
    # umask; the WAL holds the same personal data as the file, so keep it owner-only too.
    os.umask(os.umask(0o077) | 0o077)
    con.execute("SET TimeZone = 'UTC'")
    con.execute(CHECKPOINT_THRESHOLD_SQL)
    migrate(con)
    return con


def applied_versions(con: duckdb.DuckDBPyConnection) -> set[int]:
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_version ("
        " version INTEGER PRIMARY KEY, description VARCHAR NOT NULL, applied_at TIMESTAMPTZ NOT NULL)"
    )
    return {int(row[0]) for row in con.execute("SELECT version FROM schema_version").fetchall()}


def schema_version(con: duckdb.DuckDBPyConnection) -> int:
    return max(applied_versions(con), default=0)


def migrate(con: duckdb.DuckDBPyConnection) -> list[int]:
    """Apply every migration the file has not had yet, in version order, each in its own transaction.

    Rooms number their migrations in separate ranges, so a file can be at version 30 and still
    miss 10: what counts is the set of applied versions, not the highest.
    """
    done = applied_versions(con)
    applied: list[int] = []
    for version, description, sql in sorted(MIGRATIONS, key=lambda m: m[0]):
        if version in done:
            continue
        with transaction(con):
            con.execute(sql)
            con.execute(
                "INSERT INTO schema_version VALUES (?, ?, ?)",
                [version, description, datetime.now(UTC)],
            )
        applied.append(version)
    return applied


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """Run a block atomically: everything in it commits together or not at all."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException as exc:
        con.execute("ROLLBACK")
        full = _disk_full(exc, _database_file(con))
        if full:
            raise full from exc
        raise
    try:
        con.execute("COMMIT")
    except duckdb.Error as exc:
        # A failed COMMIT (e.g. the WAL could not be written) leaves nothing of the transaction stored.
        full = _disk_full(exc, _database_file(con))
        if full:
            raise full from exc
        raise


def _database_file(con: duckdb.DuckDBPyConnection) -> str:
    try:
        row = con.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()").fetchone()
    except duckdb.Error:
        row = None
    return str(row[0]) if row and row[0] else "the warehouse file"


def table_counts(con: duckdb.DuckDBPyConnection, tables: tuple[str, ...]) -> dict[str, int]:
    return {t: int(con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]) for t in tables}  # type: ignore[index]
