"""Warehouse reads shared by the report and the alerts: time windows, post facts, the ranking."""

from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import duckdb

from resonanz.settings import Brand

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


@dataclass(frozen=True)
class RisingAccount:
    """An account of the current top ranks with its rank in the ranking before."""

    rank: int
    previous_rank: int | None  # None: not ranked at all before
    source: str
    account_id: str
    handle: str
    score: float
    explanation: str
    as_of: datetime
    previous_as_of: datetime
    previous_size: int  # accounts in the previous ranking

    @property
    def gain(self) -> int | None:
        return None if self.previous_rank is None else self.previous_rank - self.rank


def rising_accounts(con: duckdb.DuckDBPyConnection, top_n: int = 10) -> list[RisingAccount]:
    """Compare each source's newest ranking with its previous one; [] when a source has only one."""
    rows = con.execute(
        """
        WITH runs AS (
            SELECT source, as_of, dense_rank() OVER (PARTITION BY source ORDER BY as_of DESC) AS age
            FROM (SELECT DISTINCT source, as_of FROM influence_scores)
        ),
        latest AS (SELECT source, as_of FROM runs WHERE age = 1),
        previous AS (
            SELECT r.source, r.as_of, (SELECT count(*) FROM influence_scores x
                                       WHERE x.source = r.source AND x.as_of = r.as_of) AS size
            FROM runs r WHERE age = 2
        )
        SELECT s.rank, p.rank, s.source, s.account_id, coalesce(a.handle, s.account_id), s.score,
               s.explanation, s.as_of, pr.as_of, pr.size
        FROM influence_scores s
        JOIN latest l ON l.source = s.source AND l.as_of = s.as_of
        JOIN previous pr ON pr.source = s.source
        LEFT JOIN influence_scores p
            ON p.source = s.source AND p.account_id = s.account_id AND p.as_of = pr.as_of
        LEFT JOIN accounts a ON a.source = s.source AND a.account_id = s.account_id
        WHERE s.rank <= ?
        ORDER BY coalesce(p.rank, 1000000) - s.rank DESC, s.rank, s.source, s.account_id
        """,
        [top_n],
    ).fetchall()
    return [
        RisingAccount(
            rank=int(r[0]), previous_rank=None if r[1] is None else int(r[1]), source=r[2], account_id=r[3],
            handle=r[4], score=float(r[5]), explanation=r[6], as_of=as_utc(r[7]), previous_as_of=as_utc(r[8]),
            previous_size=int(r[9]),
        )
        for r in rows
    ]


def select_brands(brands: list[Brand], names: Sequence[str] | None) -> list[Brand]:
    """Keep the named brands with their products, plus every competitor; all when `names` is empty."""
    if not names:
        return list(brands)
    known = {b.name for b in brands}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise KeyError(f"unknown brand(s) {', '.join(unknown)} (configured: {', '.join(sorted(known))})")
    wanted = set(names)
    return [b for b in brands if b.name in wanted or b.owner in wanted or b.kind == "competitor"]


def has_rows(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    """Tell whether a table exists in this warehouse (other rooms add theirs by migration) and has rows."""
    exists = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [table]
    ).fetchone()[0]  # type: ignore[index]
    return bool(exists) and con.execute(f"SELECT count(*) > 0 FROM {table}").fetchone()[0]  # type: ignore[index]


@dataclass(frozen=True)
class RisingRow:
    """An account whose influence rose, from the graph room's rising_influencers or two rankings."""

    source: str
    account_id: str
    handle: str
    rank: int
    change: str  # e.g. "robust z 4.2 vs its own history" or "rank 40 → 3"
    explanation: str
    as_of: datetime


def rising_influencers(con: duckdb.DuckDBPyConnection, top_n: int = 10) -> list[RisingRow]:
    """Prefer the graph room's rising_influencers table; fall back to comparing the last two rankings."""
    if has_rows(con, "rising_influencers"):
        rows = con.execute(
            """
            WITH latest AS (SELECT source, max(as_of) AS as_of FROM rising_influencers GROUP BY source)
            SELECT r.source, r.account_id, coalesce(a.handle, r.account_id), r.rank, r.rise, r.explanation, r.as_of
            FROM rising_influencers r JOIN latest l USING (source, as_of)
            LEFT JOIN accounts a ON a.source = r.source AND a.account_id = r.account_id
            ORDER BY r.rise DESC, r.rank LIMIT ?
            """,
            [top_n],
        ).fetchall()
        return [RisingRow(r[0], r[1], r[2], int(r[3]), f"rise z {r[4]:.1f} against its own history", r[5],
                          as_utc(r[6])) for r in rows]
    found = []
    for a in rising_accounts(con, top_n):
        if a.previous_size < top_n or (a.gain is not None and a.gain <= 0):
            continue
        before = f"rank {a.previous_rank}" if a.previous_rank else "unranked"
        found.append(RisingRow(a.source, a.account_id, a.handle, a.rank, f"{before} → rank {a.rank}",
                               a.explanation, a.as_of))
    return found
