"""Storage past one DuckDB file: the warehouse's fact tables as partitioned Parquet (a "lake").

Layout (hive style, so DuckDB, Spark, Polars and pandas all read it and prune by folder)::

    <lake>/posts/source=x/day=2026-10-01/part-0.parquet
    <lake>/interactions/source=x/day=2026-10-01/part-0.parquet
    <lake>/annotations/source=x/day=2026-10-01/part-0.parquet   (day of the annotated post)
    <lake>/accounts/source=x/part-0.parquet

How a write stays safe and idempotent:

- DuckDB's own `COPY ... PARTITION_BY` writes the rows into a staging folder under `<lake>/_staging`
  (the same mechanism warehouse/export.py uses for its day-partitioned BI export, which by contrast
  replaces the whole export at once and shapes rows for BI tools).
- Each partition is then moved in with one `os.replace` of its single file: readers see the old
  file or the new one, never half of one. A crash (even SIGKILL) leaves at most the staging folder
  or a `.part-0.parquet.tmp` beside the old file; neither matches the `*.parquet` glob readers use,
  and the next write removes both.
- A partition whose rows did not change keeps its file untouched (compared by row count and an
  order-independent hash of every row), so re-running any window rewrites nothing and a sync to
  object storage uploads nothing. Partitions in the window that lost all their rows (an erased
  person) are removed.

`since` limits a write to partitions whose day is on or after it: the daily job rewrites the last
few days, not the whole history. One writer per lake at a time (the flows' writer lock gives that):
a write starts by clearing the staging folder a crashed one left. `attach_lake` creates `lake_<table>` views over the files with
`read_parquet(..., hive_partitioning = true)`; a filter on `source` or `day` skips whole files
(EXPLAIN shows "File Filters" and "Scanning Files: k/n").
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb

PART_FILE = "part-0.parquet"
STAGING = "_staging"


def _utc_day(column: str) -> str:
    return f"CAST(timezone('UTC', {column}) AS DATE)"


@dataclass(frozen=True, slots=True)
class LakeTable:
    """One warehouse table as lake files: the rows to write (with partition columns) and their order."""

    name: str
    query: str
    order_by: str
    partition_by: tuple[str, ...] = ("source", "day")


LAKE_TABLES: tuple[LakeTable, ...] = (
    LakeTable("posts", f"SELECT p.*, {_utc_day('coalesce(p.created_at, p.loaded_at)')} AS day FROM posts p",
              "post_id"),
    LakeTable("interactions",
              f"SELECT i.*, {_utc_day('coalesce(i.created_at, i.loaded_at)')} AS day FROM interactions i",
              "kind, src_account_id, dst_account_id, post_id"),
    LakeTable("annotations",
              f"SELECT a.*, {_utc_day('coalesce(p.created_at, p.loaded_at)')} AS day "
              "FROM annotations a JOIN posts p ON p.source = a.source AND p.post_id = a.post_id",
              "post_id, task"),
    LakeTable("accounts", "SELECT * FROM accounts", "account_id", partition_by=("source",)),
)
LAKE_TABLE_NAMES = tuple(table.name for table in LAKE_TABLES)


@dataclass(slots=True)
class LakeResult:
    """What a lake write did, per table: partitions written, left as they were, removed; rows written."""

    written: dict[str, int] = field(default_factory=dict)
    unchanged: dict[str, int] = field(default_factory=dict)
    removed: dict[str, int] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)


def _sql_text(value: str | Path) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def _partitions(root: Path, depth: int) -> dict[tuple[str, ...], Path]:
    """Partition folders under `root` that hold a part file, keyed by their `name=value` parts."""
    if not root.exists():
        return {}
    found = {}
    for part in root.glob("/".join(["*"] * depth) + "/" + PART_FILE):
        folder = part.parent
        found[tuple(folder.relative_to(root).parts)] = folder
    return found


def _in_window(key: tuple[str, ...], since: date | None) -> bool:
    if since is None:
        return True
    days = [value.removeprefix("day=") for value in key if value.startswith("day=")]
    return not days or days[0] >= since.isoformat()  # ISO dates compare as strings


def _fingerprint(con: duckdb.DuckDBPyConnection, path: Path) -> tuple[object, ...]:
    """Row count and an order-independent hash of all rows: equal for the same rows written twice."""
    return tuple(con.execute(
        f"SELECT count(*), sum(hash(t)) FROM read_parquet({_sql_text(path)}) t"
    ).fetchone() or ())


def write_lake(
    con: duckdb.DuckDBPyConnection,
    lake_dir: Path | str,
    tables: Sequence[str] = LAKE_TABLE_NAMES,
    since: date | None = None,
    on_partition: Callable[[str, Path], None] | None = None,
) -> LakeResult:
    """Write the warehouse's tables to `lake_dir` as partitioned Parquet, partition by partition atomically.

    `since` rewrites only partitions whose day is on or after it (tables without days are always
    written whole). `on_partition(table, folder)` is called before each partition is moved in.
    """
    unknown = set(tables) - set(LAKE_TABLE_NAMES)
    if unknown:
        raise ValueError(f"no lake layout for {', '.join(sorted(unknown))}; known: {', '.join(LAKE_TABLE_NAMES)}")
    lake = Path(lake_dir)
    shutil.rmtree(lake / STAGING, ignore_errors=True)  # what a crashed write left behind
    result = LakeResult()
    old_umask = os.umask(0o077)  # the lake holds the same personal data as the warehouse: owner-only
    try:
        lake.mkdir(parents=True, exist_ok=True)
        for table in (t for t in LAKE_TABLES if t.name in tables):
            _write_table(con, lake, table, since, result, on_partition)
        shutil.rmtree(lake / STAGING, ignore_errors=True)
    finally:
        os.umask(old_umask)
    return result


def _write_table(con: duckdb.DuckDBPyConnection, lake: Path, table: LakeTable, since: date | None,
                 result: LakeResult, on_partition: Callable[[str, Path], None] | None) -> None:
    staging = lake / STAGING / f"{table.name}-{uuid.uuid4().hex}"
    query = f"SELECT * FROM ({table.query}) AS rows"
    if since is not None and "day" in table.partition_by:
        query += f" WHERE day >= DATE '{date.fromisoformat(since.isoformat())}'"  # a date object, never raw text
    partition_list = ", ".join(table.partition_by)
    result.rows[table.name] = int(con.execute(f"SELECT count(*) FROM ({query})").fetchone()[0])  # type: ignore[index]
    if result.rows[table.name]:
        staging.parent.mkdir(parents=True, exist_ok=True)
        # Sorted so a partition's file is laid out by key: row groups prune well on post_id and friends.
        con.execute(
            f"COPY ({query} ORDER BY {partition_list}, {table.order_by}) TO {_sql_text(staging)} "
            f"(FORMAT parquet, COMPRESSION zstd, PARTITION_BY ({partition_list}), FILENAME_PATTERN 'part-{{i}}')"
        )
    target_root = lake / table.name
    depth = len(table.partition_by)
    new = _partitions(staging, depth)
    if len(list(staging.glob("/".join(["*"] * depth) + "/*.parquet"))) != len(new):
        raise RuntimeError(f"DuckDB split a {table.name} partition into several files; the lake expects one")
    old = {key: folder for key, folder in _partitions(target_root, depth).items() if _in_window(key, since)}
    written = unchanged = removed = 0
    for key, staged in sorted(new.items()):
        target = target_root.joinpath(*key)
        target_file = target / PART_FILE
        if target_file.exists() and _fingerprint(con, target_file) == _fingerprint(con, staged / PART_FILE):
            unchanged += 1
            continue
        if on_partition is not None:
            on_partition(table.name, target)
        target.mkdir(parents=True, exist_ok=True)
        # Staging and lake share a file system, so this rename is atomic; the .tmp step keeps a
        # half-moved file (another file system mounted under the lake) out of readers' glob.
        tmp = target / f".{PART_FILE}.tmp"
        shutil.move(staged / PART_FILE, tmp)
        os.replace(tmp, target_file)
        written += 1
    for key, folder in old.items():
        if key not in new:
            (folder / PART_FILE).unlink()
            removed += 1
            try:
                folder.rmdir()
            except OSError:
                pass  # something else lives there; an empty partition folder is harmless anyway
    for leftover in target_root.glob("**/." + PART_FILE + ".tmp") if target_root.exists() else ():
        leftover.unlink()  # from a crash between the two steps above
    shutil.rmtree(staging, ignore_errors=True)
    result.written[table.name], result.unchanged[table.name], result.removed[table.name] = written, unchanged, removed


def lake_glob(lake_dir: Path | str, table: str) -> str:
    """The read_parquet glob of one lake table."""
    depth = len(next(t for t in LAKE_TABLES if t.name == table).partition_by)
    return str(Path(lake_dir) / table / "/".join(["*"] * depth) / "*.parquet")


def attach_lake(con: duckdb.DuckDBPyConnection, lake_dir: Path | str) -> list[str]:
    """Create a `lake_<table>` view per lake table that has files; return the view names."""
    views = []
    for table in LAKE_TABLES:
        if not _partitions(Path(lake_dir) / table.name, len(table.partition_by)):
            continue  # read_parquet fails on a glob without files
        # Explicit types: a source named "2024" must stay text, and day a DATE.
        types = ", ".join(f"'{column}': '{'DATE' if column == 'day' else 'VARCHAR'}'" for column in table.partition_by)
        con.execute(
            f"CREATE OR REPLACE VIEW lake_{table.name} AS SELECT * FROM read_parquet("
            f"{_sql_text(lake_glob(lake_dir, table.name))}, hive_partitioning = true, hive_types = {{{types}}})"
        )
        views.append(f"lake_{table.name}")
    return views
