"""Warehouse reads shared by the report and the alerts: time windows, post facts, the ranking."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import duckdb

# One row per post in [?, ?] with its language, sentiment and engagement. Language comes from
# the nlp "language" annotation, falling back to the connector's hint; region tags ("de-DE")
# are folded to the bare ISO code so EN and DE group cleanly.
POST_FACTS_SQL = """
    SELECT
        p.source, p.post_id, p.author_id, p.text, p.url, p.created_at,
        coalesce(lower(split_part(coalesce(lang.label, p.lang_hint), '-', 1)), 'und') AS language,
        sent.label AS sentiment,
        sent.score AS sentiment_score,
        coalesce(p.like_count, 0) + coalesce(p.repost_count, 0)
            + coalesce(p.reply_count, 0) + coalesce(p.quote_count, 0) AS engagement
    FROM posts p
    LEFT JOIN annotations lang
        ON lang.source = p.source AND lang.post_id = p.post_id AND lang.task = 'language'
    LEFT JOIN annotations sent
        ON sent.source = p.source AND sent.post_id = p.post_id AND sent.task = 'sentiment'
    WHERE p.created_at BETWEEN ? AND ?
"""

# Tracked-brand mentions of the posts above, one row per (post, brand). The sentiment toward
# the brand wins over the post's overall sentiment when the nlp room could tell them apart.
BRAND_FACTS_SQL = f"""
    WITH facts AS ({POST_FACTS_SQL}),
    mentions AS (
        SELECT source, post_id, brand, any_value(brand_kind) AS brand_kind,
               max(sentiment) AS mention_sentiment
        FROM brand_mentions WHERE list_contains(?, brand)
        GROUP BY source, post_id, brand
    )
    SELECT f.*, m.brand, m.brand_kind, coalesce(m.mention_sentiment, f.sentiment) AS brand_sentiment
    FROM facts f
    JOIN mentions m ON m.source = f.source AND m.post_id = f.post_id
"""


@dataclass(frozen=True)
class Window:
    """An inclusive time range of post creation times, both ends in UTC."""

    start: datetime
    end: datetime


@dataclass(frozen=True)
class RankedAccount:
    """One account of the current influence ranking."""

    rank: int
    source: str
    account_id: str
    handle: str
    score: float
    explanation: str
    followers_count: int | None
    as_of: datetime


def as_utc(moment: datetime) -> datetime:
    """Read a naive datetime as UTC; convert an aware one to UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def data_range(con: duckdb.DuckDBPyConnection) -> Window | None:
    """Return the oldest and newest post creation times, or None when no post is dated."""
    row = con.execute("SELECT min(created_at), max(created_at) FROM posts").fetchone()
    if row is None or row[0] is None:
        return None
    return Window(as_utc(row[0]), as_utc(row[1]))


def resolve_window(
    con: duckdb.DuckDBPyConnection,
    start: datetime | None,
    end: datetime | None,
    last_days: float | None = None,
) -> Window | None:
    """Fill missing ends from the data: end = newest post; start = oldest post or end - last_days."""
    if start is not None and end is not None:
        window = Window(as_utc(start), as_utc(end))
    else:
        data = data_range(con)
        if data is None and (start is None or end is None):
            return None
        resolved_end = as_utc(end) if end is not None else data.end  # type: ignore[union-attr]
        if start is not None:
            resolved_start = as_utc(start)
        elif last_days is not None:
            resolved_start = resolved_end - timedelta(days=last_days)
        else:
            resolved_start = data.start  # type: ignore[union-attr]
        window = Window(resolved_start, resolved_end)
    if window.start > window.end:
        raise ValueError(f"window starts after it ends: {window.start} > {window.end}")
    return window


def current_ranking(con: duckdb.DuckDBPyConnection, top_n: int = 10) -> list[RankedAccount]:
    """Return the top accounts of the newest ranking of each source, best rank first."""
    # Each source is ranked on its own graph, so "current" is the latest as_of per source.
    rows = con.execute(
        """
        WITH latest AS (
            SELECT source, max(as_of) AS as_of FROM influence_scores GROUP BY source
        )
        SELECT s.rank, s.source, s.account_id, coalesce(a.handle, s.account_id), s.score,
               s.explanation, a.followers_count, s.as_of
        FROM influence_scores s
        JOIN latest l ON l.source = s.source AND l.as_of = s.as_of
        LEFT JOIN accounts a ON a.source = s.source AND a.account_id = s.account_id
        ORDER BY s.rank, s.score DESC, s.source, s.account_id
        LIMIT ?
        """,
        [top_n],
    ).fetchall()
    return [
        RankedAccount(
            rank=int(r[0]), source=r[1], account_id=r[2], handle=r[3], score=float(r[4]),
            explanation=r[5], followers_count=r[6], as_of=as_utc(r[7]),
        )
        for r in rows
    ]
