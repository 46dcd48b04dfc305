"""Store a full influence ranking (groups, bots, rising accounts, brand standings, examples) and read its inputs.

Every table is keyed by the ranking's as_of: saving a ranking first deletes the rows of its
as_of, then bulk-upserts the new ones through Arrow, all in one transaction, so re-running the
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
from warehouse.load import upsert
from warehouse.stages import save_scores

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
    counts = {"influence_scores": save_scores(con, result.scores, run_id)}
    if not result.scores:
        return counts
    as_of = result.scores[0].as_of
    examples = [
        _Example(as_of, source, account_id, position, post_id)
        for (source, account_id), posts in sorted(result.examples.items())
        for position, post_id in enumerate(posts, start=1)
    ]
    batches = {
        "communities": records_to_arrow(result.communities, COMMUNITY_SCHEMA, {"run_id": run_id}),
        "community_members": records_to_arrow(result.members, MEMBER_SCHEMA),
        "bot_scores": records_to_arrow(result.bots, BOT_SCHEMA),
        "rising_influencers": records_to_arrow(result.rising, RISING_SCHEMA),
        "brand_influence": records_to_arrow(result.brands, BRAND_SCHEMA),
        "influence_examples": records_to_arrow(examples, EXAMPLE_SCHEMA),
    }
    with transaction(con):
        for table, batch in batches.items():
            con.execute(f"DELETE FROM {table} WHERE as_of = ?", [as_of])
            upsert(con, table, batch, TABLES[table][1])
            counts[table] = batch.num_rows
    return counts


def score_history(con: duckdb.DuckDBPyConnection) -> pa.Table:
    """Return every stored ranking's (as_of, source, account_id, score): the history rising accounts are judged on."""
    return con.execute(
        "SELECT as_of, source, account_id, score FROM influence_scores ORDER BY as_of, source, account_id"
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
