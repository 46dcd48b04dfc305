"""Load the real edge lists in tests/fixtures/graph as interactions tables."""

from __future__ import annotations

import csv
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa

FIXTURES = Path(__file__).parents[1] / "fixtures" / "graph"

INTERACTION_SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("kind", pa.string()),
        ("src_account_id", pa.string()),
        ("dst_account_id", pa.string()),
        ("post_id", pa.string()),
        ("target_post_id", pa.string()),
        ("created_at", pa.timestamp("us", tz="UTC")),
    ]
)


def interactions_table(rows: list[dict]) -> pa.Table:
    """Build an interactions table from dicts, filling unspecified columns."""
    full = [
        {
            "source": row.get("source", "x"),
            "kind": row.get("kind", "reply"),
            "src_account_id": row["src"],
            "dst_account_id": row["dst"],
            "post_id": row.get("post_id", f"p{i}"),
            "target_post_id": row.get("target_post_id"),
            "created_at": row.get("created_at", datetime(2024, 1, 1, tzinfo=timezone.utc)),
        }
        for i, row in enumerate(rows)
    ]
    return pa.Table.from_pylist(full, schema=INTERACTION_SCHEMA)


def load_twcs() -> pa.Table:
    """Return the TWCS fixture edges (reply|mention, Twitter time format)."""
    with open(FIXTURES / "twcs_edges.csv", newline="") as handle:
        rows = [
            {
                "source": "twcs",
                "kind": row["type"],
                "src": row["src_author"],
                "dst": row["dst_author"],
                "post_id": row["tweet_id"],
                "target_post_id": row["target_tweet_id"] or None,
                "created_at": datetime.strptime(row["created_at"], "%a %b %d %H:%M:%S %z %Y"),
            }
            for row in csv.DictReader(handle)
        ]
    return interactions_table(rows)


def load_germeval() -> pa.Table:
    """Return the GermEval fixture edges; a tweet that starts with @handle is a reply."""
    with open(FIXTURES / "germeval_db_edges.csv", newline="") as handle:
        rows = [
            {
                "source": "germeval",
                "kind": "reply" if row["type"] == "reply_mention" else "mention",
                "src": row["src_author"],
                "dst": row["dst_author"],
                "post_id": row["post_id"],
                "created_at": datetime.fromisoformat(row["created_at"].replace("Z", "+00:00")),
            }
            for row in csv.DictReader(handle)
        ]
    return interactions_table(rows)


def load_germeval_signals() -> pa.Table:
    """Return gold relevance (as brand_related) and sentiment per GermEval fixture tweet."""
    with open(FIXTURES / "germeval_db_post_labels.csv", newline="") as handle:
        rows = [
            {
                "source": "germeval",
                "post_id": row["post_id"],
                "author_id": row["author_handle"],
                "brand_related": row["relevance"] == "true",
                "sentiment": row["sentiment"] or None,
                "lang": "de",
            }
            for row in csv.DictReader(handle)
        ]
    return pa.Table.from_pylist(rows)
