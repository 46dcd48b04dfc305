"""Open the DuckDB warehouse: create it owner-only, apply missing migrations, explain lock errors."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from warehouse.schema import MIGRATIONS


class WarehouseLocked(RuntimeError):
    """Another process holds the DuckDB file open for writing."""


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
    con.execute("SET TimeZone = 'UTC'")
    migrate(con)
    return con


def schema_version(con: duckdb.DuckDBPyConnection) -> int:
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_version ("
        " version INTEGER PRIMARY KEY, description VARCHAR NOT NULL, applied_at TIMESTAMPTZ NOT NULL)"
    )
    row = con.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()
    return int(row[0]) if row else 0


def migrate(con: duckdb.DuckDBPyConnection) -> list[int]:
    """Apply every migration newer than the file's version, each in its own transaction."""
    current = schema_version(con)
    applied: list[int] = []
    for version, description, sql in MIGRATIONS:
        if version <= current:
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
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def table_counts(con: duckdb.DuckDBPyConnection, tables: tuple[str, ...]) -> dict[str, int]:
    return {t: int(con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]) for t in tables}  # type: ignore[index]
