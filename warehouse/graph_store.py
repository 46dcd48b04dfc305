"""Store a full influence ranking (groups, bots, rising accounts, brand standings, examples) and read its inputs.

Every table is keyed by the ranking's as_of: saving a ranking first deletes the rows of its
as_of, then bulk-inserts the new ones through Arrow, all in one transaction, so re-running the
same data window leaves the tables exactly as one run would. Records are duck-typed (the
graph room's dataclasses); the warehouse does not import the graph room.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb
import pyarrow as pa

from warehouse.arrow import TIMESTAMP, records_to_arrow
from warehouse.db import transaction
from warehouse.stages import SCORE_SCHEMA, save_scores

COMMUNITY_SCHEMA = pa.schema(
    [("as_of", TIMESTAMP), ("community_id", pa.int32()), ("size", pa.int32()), ("influence", pa.float64()),
     ("leaders", pa.list_(pa.string())), ("brands", pa.string()), ("net_sentiment", pa.float64()),
     ("explanation", pa.string()), ("run_id", pa.string())]
)
MEMBER_SCHEMA = pa.schema(
    [("as_of", TIMESTAMP), ("source", pa.string()), ("account_id", pa.string()), ("community_id", pa.int32()),
     ("rank_in_community", pa.int32())]
)
BOT_SCHEMA = pa.schema(
    [("as_of", TIMESTAMP), ("source", pa.string()), ("account_id", pa.string()), ("bot_score", pa.float64()),
     ("likely_bot", pa.bool_()), ("explanation", pa.string()), ("signals", pa.string())]
)
RISING_SCHEMA = pa.schema(
    [("as_of", TIMESTAMP), ("source", pa.string()), ("account_id", pa.string()), ("rank", pa.int32()),
     ("rise", pa.float64()), ("score", pa.float64()), ("previous_median", pa.float64()),
     ("history_points", pa.int32()), ("explanation", pa.string())]
)
BRAND_SCHEMA = pa.schema(
    [("as_of", TIMESTAMP), ("brand", pa.string()), ("source", pa.string()), ("account_id", pa.string()),
     ("rank", pa.int32()), ("pagerank", pa.float64()), ("engagement", pa.float64())]
)
EXAMPLE_SCHEMA = pa.schema(
    [("as_of", TIMESTAMP), ("source", pa.string()), ("account_id", pa.string()), ("position", pa.int32()),
     ("post_id", pa.string())]
)
# table -> (schema, primary key)
TABLES: dict[str, tuple[pa.Schema, tuple[str, ...]]] = {
    "communities": (COMMUNITY_SCHEMA, ("as_of", "community_id")),
    "community_members": (MEMBER_SCHEMA, ("as_of", "source", "account_id")),
    "bot_scores": (BOT_SCHEMA, ("as_of", "source", "account_id")),
    "rising_influencers": (RISING_SCHEMA, ("as_of", "source", "account_id")),
    "brand_influence": (BRAND_SCHEMA, ("as_of", "brand", "source", "account_id")),
    "influence_examples": (EXAMPLE_SCHEMA, ("as_of", "source", "account_id", "position")),
}


def save_ranking(con: duckdb.DuckDBPyConnection, result: Any, run_id: str) -> dict[str, int]:
    """Store a `graph.RankingResult`: scores, then every other table; return rows stored per table."""
    if not result.scores:
        return {"influence_scores": 0}
    as_of = result.scores[0].as_of
    counts = {"influence_scores": _save_score_rows(con, result.scores, as_of, run_id)}
    examples = [
        _Example(as_of, source, account_id, position, post_id)
        for (source, account_id), posts in sorted(result.examples.items())
        for position, post_id in enumerate(posts, start=1)
    ]
    batches = {
        "communities": records_to_arrow(result.communities, COMMUNITY_SCHEMA, {"run_id": run_id}),
        "community_members": _as_arrow(result.members, MEMBER_SCHEMA),
        "bot_scores": records_to_arrow(result.bots, BOT_SCHEMA),
        "rising_influencers": records_to_arrow(result.rising, RISING_SCHEMA),
        "brand_influence": records_to_arrow(result.brands, BRAND_SCHEMA),
        "influence_examples": records_to_arrow(examples, EXAMPLE_SCHEMA),
    }
    with transaction(con):
        for table, batch in batches.items():
            con.execute(f"DELETE FROM {table} WHERE as_of = ?", [as_of])
            _insert(con, table, batch)
            counts[table] = batch.num_rows
    return counts


def _as_arrow(rows: Any, schema: pa.Schema, extra: dict[str, Any] | None = None) -> pa.Table:
    """Return rows as a table with `schema`: straight from an Arrow-backed sequence, else from records."""
    table = getattr(rows, "table", None)
    if table is None:
        return records_to_arrow(rows, schema, extra)
    columns = []
    for field in schema:
        if extra and field.name in extra:
            columns.append(pa.array([extra[field.name]] * table.num_rows, field.type))
        else:
            columns.append(table[field.name].cast(field.type))
    return pa.Table.from_arrays(columns, schema=schema)


def _save_score_rows(con: duckdb.DuckDBPyConnection, scores: Any, as_of: datetime, run_id: str) -> int:
    """Store one ranking's scores as `save_scores` does, without a dataclass per account when they are Arrow-backed."""
    if getattr(scores, "table", None) is None:
        return save_scores(con, scores, run_id)
    batch = _as_arrow(scores, SCORE_SCHEMA, {"run_id": run_id})
    with transaction(con):
        con.execute("DELETE FROM influence_scores WHERE as_of = ?", [as_of])
        _insert(con, "influence_scores", batch)
    return batch.num_rows


def _insert(con: duckdb.DuckDBPyConnection, table: str, batch: pa.Table) -> None:
    """Append a batch whose keys are all new (its as_of was just deleted): no conflict check to pay for.

    Every batch comes from one ranking and has unique keys, so the primary key still holds.
    """
    if batch.num_rows == 0:
        return
    view = f"_new_{table}"
    con.register(view, batch)
    try:
        columns = ", ".join(batch.column_names)
        con.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {view}")
    finally:
        con.unregister(view)


def score_history(con: duckdb.DuckDBPyConnection) -> pa.Table:
    """Return every stored ranking's (as_of, source, account_id, score, in_degree): the history rising accounts are judged on."""
    return con.execute(
        "SELECT as_of, source, account_id, score, in_degree FROM influence_scores ORDER BY as_of, source, account_id"
    ).to_arrow_table()


def ranking_interactions(con: duckdb.DuckDBPyConnection) -> pa.Table:
    """Return the interactions the ranking reads, in storage order.

    Sorting ten million rows by five string columns (as an earlier reader did) took longer than the whole PageRank. Storage order (rowid) is as repeatable and costs
    an integer sort: sums of float weights then add up in the same order on every re-run.
    """
    return con.execute(
        "SELECT source, kind, src_account_id, dst_account_id, post_id, target_post_id, created_at "
        "FROM interactions ORDER BY rowid"
    ).to_arrow_table()


def ranking_post_signals(con: duckdb.DuckDBPyConnection) -> pa.Table:
    """Return per post what the ranking reads: author, brand relation, sentiment, intent and a text hash.

    The hash is of the text lower-cased, links and @handles removed and spaces collapsed, so a
    spammer's copies that differ only in a link or an addressee count as the same text.
    `intent` is NULL until the nlp "intent" task has annotated the post.
    """
    return con.execute(
        r"""
        SELECT p.source, p.post_id, p.author_id,
               EXISTS (SELECT 1 FROM brand_mentions b WHERE b.source = p.source AND b.post_id = p.post_id)
                   AS brand_related,
               s.label AS sentiment,
               i.label AS intent,
               hash(trim(regexp_replace(regexp_replace(lower(p.text), '(https?://\S+|@\w+)', '', 'g'), '\s+', ' ', 'g')))
                   AS text_hash
        FROM posts p
        LEFT JOIN annotations s ON s.source = p.source AND s.post_id = p.post_id AND s.task = 'sentiment'
        LEFT JOIN annotations i ON i.source = p.source AND i.post_id = p.post_id AND i.task = 'intent'
        ORDER BY p.source, p.post_id
        """
    ).to_arrow_table()


def ranking_accounts(con: duckdb.DuckDBPyConnection) -> pa.Table:
    """Return account metadata the ranking and bot score use (NULL where a source does not report it)."""
    return con.execute(
        "SELECT source, account_id, handle, followers_count, following_count, post_count, created_at "
        "FROM accounts ORDER BY source, account_id"
    ).to_arrow_table()


def person_links(con: duckdb.DuckDBPyConnection) -> pa.Table:
    """Return (source, account_id, person_id) for accounts the CRM linking ties to a customer.

    Only links that are automatic or confirmed by an analyst count; 'review' and 'rejected' do
    not merge anybody. An account linked to several customers keeps the most probable one.
    """
    return con.execute(
        """
        SELECT source, account_id, arg_max(customer_id, match_probability) AS person_id
        FROM account_customer_links
        WHERE status IN ('auto', 'confirmed')
        GROUP BY source, account_id
        ORDER BY source, account_id
        """
    ).to_arrow_table()


def brand_posts(con: duckdb.DuckDBPyConnection) -> pa.Table:
    """Return (source, post_id, brand) for every post that mentions a tracked brand."""
    return con.execute(
        "SELECT DISTINCT source, post_id, brand FROM brand_mentions ORDER BY source, post_id, brand"
    ).to_arrow_table()


@dataclass(slots=True)
class _Example:
    """One example post of an account, shaped like a record for `records_to_arrow`."""

    as_of: datetime
    source: str
    account_id: str
    position: int
    post_id: str
