"""Idempotent bulk loads: connector pages, enrichment results and influence scores.

Every load goes through Arrow (never row-by-row `executemany`), de-duplicates its batch by
primary key first — DuckDB keeps an arbitrary row when one statement carries the same key
twice — and upserts by natural key, so re-running any window adds no rows.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from typing import Any

import duckdb
import pyarrow as pa

from connectors.records import Account, Cursor, Interaction, Page, Post, Quarantined, RawPayload
from warehouse.arrow import TIMESTAMP, records_to_arrow, schema_of
from warehouse.db import transaction

POST_SCHEMA = schema_of(Post).append(pa.field("loaded_at", TIMESTAMP))
ACCOUNT_SCHEMA = schema_of(Account).append(pa.field("loaded_at", TIMESTAMP))
INTERACTION_SCHEMA = schema_of(Interaction).append(pa.field("loaded_at", TIMESTAMP))
QUARANTINE_SCHEMA = pa.schema(
    [("quarantine_id", pa.string()), ("source", pa.string()), ("raw_id", pa.string()),
     ("reason", pa.string()), ("fragment", pa.string()), ("quarantined_at", TIMESTAMP)]
)
RAW_SCHEMA = pa.schema(
    [("raw_id", pa.string()), ("source", pa.string()), ("endpoint", pa.string()),
     ("retrieved_at", TIMESTAMP), ("connector_version", pa.string()),
     ("content_type", pa.string()), ("body", pa.string())]
)


@dataclass(slots=True)
class LoadCounts:
    """Rows offered to each table in a load (after in-batch de-duplication)."""

    counts: dict[str, int] = field(default_factory=dict)

    def add(self, table: str, n: int) -> None:
        self.counts[table] = self.counts.get(table, 0) + n


def dedupe_last(rows: Sequence[Any], key: tuple[str, ...], merge: bool = False) -> list[Any]:
    """Keep one row per key: the last (newest, as pages arrive in fetch order).

    With `merge`, a later sighting's NULL fields are filled from the earlier one, matching what
    the upsert does against stored rows.
    """
    unique: dict[tuple[Any, ...], Any] = {}
    for row in rows:
        k = tuple(getattr(row, name) for name in key)
        earlier = unique.get(k)
        if merge and earlier is not None:
            row = replace(row, **{
                f.name: getattr(earlier, f.name) for f in fields(row) if getattr(row, f.name) is None
            })
        unique[k] = row
    return list(unique.values())


def upsert(
    con: duckdb.DuckDBPyConnection,
    table: str,
    batch: pa.Table,
    key: tuple[str, ...],
    keep_existing: tuple[str, ...] = (),
    update: bool = True,
) -> None:
    """Insert `batch` into `table`, updating rows whose key exists.

    Columns in `keep_existing` keep their stored value when the new one is NULL, so a sparse
    sighting (an account seen only as a mention) never erases a richer one.
    """
    if batch.num_rows == 0:
        return
    view = f"_batch_{table}"
    con.register(view, batch)
    try:
        cols = batch.column_names
        col_list = ", ".join(cols)
        if update:
            sets = ", ".join(
                f"{c} = coalesce(excluded.{c}, {table}.{c})" if c in keep_existing else f"{c} = excluded.{c}"
                for c in cols if c not in key
            )
            conflict = f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {sets}"
        else:
            conflict = f"ON CONFLICT ({', '.join(key)}) DO NOTHING"
        con.execute(f"INSERT INTO {table} ({col_list}) SELECT {col_list} FROM {view} {conflict}")
    finally:
        con.unregister(view)


def _raw_table(raws: Sequence[RawPayload]) -> pa.Table:
    return pa.Table.from_pydict(
        {
            "raw_id": [r.raw_id for r in raws],
            "source": [r.provenance.source for r in raws],
            "endpoint": [r.provenance.endpoint for r in raws],
            "retrieved_at": [r.provenance.retrieved_at for r in raws],
            "connector_version": [r.provenance.connector_version for r in raws],
            "content_type": [r.content_type for r in raws],
            "body": [r.body for r in raws],
        },
        schema=RAW_SCHEMA,
    )


def save_cursor(con: duckdb.DuckDBPyConnection, cursor: Cursor, pages: int, now: datetime) -> None:
    con.execute(
        """
        INSERT INTO cursors VALUES (?, ?, ?, ?, ?)
        ON CONFLICT (source_name, stream) DO UPDATE SET
            state = excluded.state,
            pages_loaded = cursors.pages_loaded + excluded.pages_loaded,
            updated_at = excluded.updated_at
        """,
        [cursor.source, cursor.stream, json.dumps(cursor.state, sort_keys=True), pages, now],
    )


def load_cursor(con: duckdb.DuckDBPyConnection, source_name: str, stream: str) -> Cursor | None:
    row = con.execute(
        "SELECT state FROM cursors WHERE source_name = ? AND stream = ?", [source_name, stream]
    ).fetchone()
    return None if row is None else Cursor(source=source_name, stream=stream, state=json.loads(row[0]))


def load_pages(con: duckdb.DuckDBPyConnection, pages: Sequence[Page], now: datetime | None = None) -> LoadCounts:
    """Store pages and advance their cursors in one transaction: all of it or none of it."""
    now = now or datetime.now(UTC)
    counts = LoadCounts()
    if not pages:
        return counts
    raws = dedupe_last([p.raw for p in pages], ("raw_id",))
    posts = dedupe_last([x for p in pages for x in p.posts], ("source", "post_id"), merge=True)
    accounts = dedupe_last([x for p in pages for x in p.accounts], ("source", "account_id"), merge=True)
    interactions = dedupe_last(
        [x for p in pages for x in p.interactions],
        ("source", "kind", "src_account_id", "dst_account_id", "post_id"),
    )
    quarantined = dedupe_last([x for p in pages for x in p.quarantined], ("quarantine_id",))
    last_cursor: dict[tuple[str, str], Cursor] = {}
    for page in pages:
        last_cursor[(page.cursor.source, page.cursor.stream)] = page.cursor

    stamp = {"loaded_at": now}
    with transaction(con):
        upsert(con, "raw_payloads", _raw_table(raws), ("raw_id",), update=False)
        upsert(con, "posts", records_to_arrow(posts, POST_SCHEMA, stamp), ("source", "post_id"),
               keep_existing=tuple(POST_SCHEMA.names))
        upsert(con, "accounts", records_to_arrow(accounts, ACCOUNT_SCHEMA, stamp), ("source", "account_id"),
               keep_existing=tuple(ACCOUNT_SCHEMA.names))
        upsert(con, "interactions", records_to_arrow(interactions, INTERACTION_SCHEMA, stamp),
               ("source", "kind", "src_account_id", "dst_account_id", "post_id"), update=False)
        upsert(con, "quarantine", records_to_arrow(quarantined, QUARANTINE_SCHEMA, {"quarantined_at": now}),
               ("quarantine_id",), update=False)
        for cursor in last_cursor.values():
            pages_for_stream = sum(1 for p in pages if (p.cursor.source, p.cursor.stream) == (cursor.source, cursor.stream))
            save_cursor(con, cursor, pages_for_stream, now)
    for table, rows in (("raw_payloads", raws), ("posts", posts), ("accounts", accounts),
                        ("interactions", interactions), ("quarantine", quarantined)):
        counts.add(table, len(rows))
    return counts


def quarantine(con: duckdb.DuckDBPyConnection, items: Sequence[Quarantined], now: datetime | None = None) -> None:
    """Store records some later stage could not handle (e.g. enrichment), with the reason."""
    now = now or datetime.now(UTC)
    batch = records_to_arrow(dedupe_last(items, ("quarantine_id",)), QUARANTINE_SCHEMA, {"quarantined_at": now})
    upsert(con, "quarantine", batch, ("quarantine_id",), update=False)
