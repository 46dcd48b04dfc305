"""Files for BI tools and a read-only snapshot for analysts.

Exports: posts with their annotations and every analyst view, as Parquet (partitioned by UTC
day where the data has a day) and as CSV. Each run replaces the previous export completely, so
an erased person disappears from the files on the next export.

Reading while the pipeline writes: DuckDB lets one process open a database file for writing,
and while it does, no other process can open that file at all. So analysts never open the
pipeline's file; they open a *snapshot*: `publish_snapshot` copies the whole database
(tables, views, schema version) into a new file with `COPY FROM DATABASE` and then renames it
over the previous snapshot. The rename is atomic: a reader sees the old snapshot or the new
one, never half of one, and an analyst who still has the old file open keeps reading it
undisturbed (it stays on disk until closed).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import duckdb

from warehouse.privacy import ID_COLUMNS
from warehouse.pseudonym import pseudonym, pseudonym_key, replace_words, word_mapping
from warehouse.views import VIEW_NAMES

# Columns that hold an account id, handle or name: replaced whole by its keyed pseudonym.
IDENTITY_COLUMNS = frozenset({
    "author_id", "author_handle", "account_id", "src_account_id", "dst_account_id", "handle", "display_name",
})


@dataclass(frozen=True, slots=True)
class ExportResult:
    """What an export wrote: rows per dataset and the folders."""

    rows: dict[str, int]
    parquet_dir: Path | None
    csv_dir: Path | None


# dataset name → query; datasets with a `day` column are partitioned by it in Parquet.
def export_queries() -> dict[str, str]:
    queries = {"posts": "SELECT * FROM v_posts_enriched"}
    queries.update({view.removeprefix("v_"): f"SELECT * FROM {view}" for view in VIEW_NAMES if view != "v_posts_enriched"})
    return queries


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")


def _columns(con: duckdb.DuckDBPyConnection, query: str) -> list[str]:
    return [d[0] for d in con.execute(f"SELECT * FROM ({query}) LIMIT 0").description]


def export_all(
    con: duckdb.DuckDBPyConnection,
    out_dir: Path | str,
    formats: tuple[str, ...] = ("parquet", "csv"),
    pseudonymise: bool = False,
) -> ExportResult:
    """Write posts (with annotations) and every analyst view to `out_dir`/parquet and `out_dir`/csv.

    With `pseudonymise`, account ids, handles and names are replaced by keyed pseudonyms (key from
    RESONANZ_PSEUDONYM_KEY), in their columns and as words in free text, so files still join.
    """
    unknown = set(formats) - {"parquet", "csv"}
    if unknown:
        raise ValueError(f"unknown export format(s): {', '.join(sorted(unknown))}; use parquet and/or csv")
    out_dir = Path(out_dir)
    parquet_dir = out_dir / "parquet" if "parquet" in formats else None
    csv_dir = out_dir / "csv" if "csv" in formats else None
    rows: dict[str, int] = {}
    queries = export_queries()
    if pseudonymise:
        queries = _pseudonymised_queries(con, queries, pseudonym_key())
    for target in (parquet_dir, csv_dir):
        if target is not None:
            # A full replace: no partition or file of an earlier export survives.
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir(parents=True)
    for name, query in queries.items():
        rows[name] = int(con.execute(f"SELECT count(*) FROM ({query})").fetchall()[0][0])
        if parquet_dir is not None:
            if "day" in _columns(con, query):
                con.execute(
                    f"COPY ({query}) TO '{_sql_path(parquet_dir / name)}' "
                    "(FORMAT parquet, PARTITION_BY (day), OVERWRITE)"
                )
            else:
                con.execute(f"COPY ({query}) TO '{_sql_path(parquet_dir / f'{name}.parquet')}' (FORMAT parquet)")
        if csv_dir is not None:
            con.execute(f"COPY ({query}) TO '{_sql_path(csv_dir / f'{name}.csv')}' (FORMAT csv, HEADER)")
    return ExportResult(rows=rows, parquet_dir=parquet_dir, csv_dir=csv_dir)


def _pseudonymised_queries(con: duckdb.DuckDBPyConnection, queries: dict[str, str], key: bytes) -> dict[str, str]:
    # Every identifier the warehouse knows, so a handle in a post's text or an explanation is
    # replaced by the same pseudonym as the handle column.
    known = [r[0] for r in con.execute(
        "SELECT account_id FROM accounts UNION SELECT handle FROM accounts WHERE handle IS NOT NULL "
        "UNION SELECT author_id FROM posts WHERE author_id IS NOT NULL "
        "UNION SELECT src_account_id FROM interactions UNION SELECT dst_account_id FROM interactions").fetchall()]
    mapping = word_mapping(known, key)
    for name in ("_pseudonym", "_pseudonymise_text"):
        try:
            con.remove_function(name)
        except duckdb.Error:
            pass  # not registered on this connection yet
    con.create_function("_pseudonym", lambda v: pseudonym(v, key), ["VARCHAR"], "VARCHAR")
    con.create_function("_pseudonymise_text", lambda v: replace_words(v, mapping), ["VARCHAR"], "VARCHAR")
    rewritten = {}
    for name, query in queries.items():
        replaced = []
        for column, dtype, *_ in con.execute(f"SELECT * FROM ({query}) LIMIT 0").description:
            quoted = '"' + column.replace('"', '""') + '"'
            if str(dtype) not in ("VARCHAR", "JSON"):
                continue
            if column in IDENTITY_COLUMNS:
                replaced.append(f"_pseudonym({quoted}) AS {quoted}")
            elif column not in ID_COLUMNS:
                cast = f"CAST({quoted} AS VARCHAR)" if str(dtype) == "JSON" else quoted
                replaced.append(f"_pseudonymise_text({cast}) AS {quoted}")
        rewritten[name] = f"SELECT * REPLACE ({', '.join(replaced)}) FROM ({query})" if replaced else query
    return rewritten


def publish_snapshot(con: duckdb.DuckDBPyConnection, path: Path | str) -> Path:
    """Copy the whole warehouse into a new file and atomically replace the snapshot at `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):
        leftover.unlink(missing_ok=True)
    database = con.execute("SELECT current_database()").fetchall()[0][0]
    old_umask = os.umask(0o077)  # the snapshot holds the same personal data: owner-only
    try:
        con.execute(f"ATTACH '{_sql_path(tmp)}' AS _snapshot")
    finally:
        os.umask(old_umask)
    try:
        con.execute(f'COPY FROM DATABASE "{database}" TO _snapshot')
    finally:
        con.execute("DETACH _snapshot")
    os.replace(tmp, path)
    return path


def open_snapshot(path: Path | str) -> duckdb.DuckDBPyConnection:
    """Open a published snapshot read-only, in UTC like the warehouse itself."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no snapshot at {path}: the pipeline publishes one after each run")
    con = duckdb.connect(str(path), read_only=True)
    con.execute("SET TimeZone = 'UTC'")
    return con
