"""What the later stages read from and write to the warehouse: enrichment, ranking, alerts, runs.

Reads return Arrow tables (zero-copy out of DuckDB); writes take the rooms' record dataclasses.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import duckdb
import pyarrow as pa

from warehouse.arrow import TIMESTAMP, records_to_arrow
from warehouse.db import transaction
from warehouse.load import dedupe_last, upsert

ANNOTATION_SCHEMA = pa.schema(
    [("source", pa.string()), ("post_id", pa.string()), ("task", pa.string()), ("label", pa.string()),
     ("score", pa.float64()), ("model_name", pa.string()), ("model_version", pa.string()),
     ("annotated_at", TIMESTAMP)]
)
ENTITY_SCHEMA = pa.schema(
    [("source", pa.string()), ("post_id", pa.string()), ("start_char", pa.int32()), ("end_char", pa.int32()),
     ("label", pa.string()), ("text", pa.string()), ("model_name", pa.string()), ("model_version", pa.string())]
)
BRAND_MENTION_SCHEMA = pa.schema(
    [("source", pa.string()), ("post_id", pa.string()), ("brand", pa.string()), ("brand_kind", pa.string()),
     ("matched_text", pa.string()), ("start_char", pa.int32()), ("sentiment", pa.string())]
)
SCORE_SCHEMA = pa.schema(
    [("as_of", TIMESTAMP), ("source", pa.string()), ("account_id", pa.string()), ("rank", pa.int32()),
     ("score", pa.float64()), ("pagerank", pa.float64()), ("in_degree", pa.float64()),
     ("out_degree", pa.float64()), ("explanation", pa.string()), ("factors", pa.string()),
     ("run_id", pa.string()), ("person_id", pa.string())]
)
ALERT_SCHEMA = pa.schema(
    [("alert_id", pa.string()), ("rule", pa.string()), ("subject", pa.string()), ("severity", pa.string()),
     ("window_start", TIMESTAMP), ("window_end", TIMESTAMP), ("message", pa.string()),
     ("evidence", pa.string()), ("fired_at", TIMESTAMP)]
)


# ---- enrich -------------------------------------------------------------------------------

# Posts lacking the current version's annotation for some task (`_wanted`: task -> "name@version").
_TO_ENRICH = """
    WITH current AS (
        SELECT a.source, a.post_id, count(*) AS tasks_done
        FROM annotations a
        JOIN _wanted w ON a.task = w.task AND a.model_name || '@' || a.model_version = w.version
        GROUP BY a.source, a.post_id
    )
    SELECT p.source, p.post_id, p.text, p.lang_hint
    FROM posts p
    LEFT JOIN current c ON c.source = p.source AND c.post_id = p.post_id
    WHERE coalesce(c.tasks_done, 0) < (SELECT count(*) FROM _wanted)
    ORDER BY p.source, p.post_id
"""


def posts_to_enrich(con: duckdb.DuckDBPyConnection, model_versions: dict[str, str]) -> pa.Table:
    """Posts missing an annotation for some task, or annotated by another model version.

    `model_versions` maps task → "model_name@version" as the enricher reports it; a changed
    model therefore re-enriches exactly the posts it affects.
    """
    with _wanted_versions(con, model_versions):
        return con.execute(_TO_ENRICH).to_arrow_table()


def count_posts_to_enrich(con: duckdb.DuckDBPyConnection, model_versions: dict[str, str]) -> int:
    """How many posts `posts_to_enrich` would return, without reading their texts."""
    with _wanted_versions(con, model_versions):
        return int(con.sql(_TO_ENRICH).aggregate("count(*)").fetchone()[0])


def annotation_coverage(con: duckdb.DuckDBPyConnection, model_versions: dict[str, str]) -> pa.Table:
    """Per task: how many stored posts carry the current model's annotation, another version's, or none.

    What `posts_to_enrich` will hand the next enrich run, counted per task (`model_versions` as there).
    """
    with _wanted_versions(con, model_versions):
        return con.execute(
            """
            WITH done AS (
                SELECT w.task, a.model_name || '@' || a.model_version = w.version AS current
                FROM _wanted w JOIN annotations a ON a.task = w.task
                JOIN posts p ON p.source = a.source AND p.post_id = a.post_id
            )
            SELECT w.task, w.version,
                   count(d.current) FILTER (WHERE d.current) AS current,
                   count(d.current) FILTER (WHERE NOT d.current) AS other_version,
                   (SELECT count(*) FROM posts) - count(d.current) AS missing
            FROM _wanted w LEFT JOIN done d ON d.task = w.task
            GROUP BY w.task, w.version
            ORDER BY w.task
            """
        ).to_arrow_table()


def other_versions(con: duckdb.DuckDBPyConnection, model_versions: dict[str, str]) -> pa.Table:
    """The stored annotations' model versions other than the current ones: task, version, posts."""
    with _wanted_versions(con, model_versions):
        return con.execute(
            """
            SELECT a.task, a.model_name || '@' || a.model_version AS version, count(*) AS posts
            FROM annotations a JOIN _wanted w ON a.task = w.task
            JOIN posts p ON p.source = a.source AND p.post_id = a.post_id
            WHERE a.model_name || '@' || a.model_version <> w.version
            GROUP BY ALL
            ORDER BY a.task, posts DESC, version
            """
        ).to_arrow_table()


@contextmanager
def _wanted_versions(con: duckdb.DuckDBPyConnection, model_versions: dict[str, str]) -> Iterator[None]:
    """Register task → "model_name@version" as the relation `_wanted` for the queries above."""
    con.register("_wanted", pa.table({"task": list(model_versions), "version": list(model_versions.values())}))
    try:
        yield
    finally:
        con.unregister("_wanted")


def save_enrichment(
    con: duckdb.DuckDBPyConnection,
    post_keys: Sequence[tuple[str, str]],
    annotations: Sequence[Any],
    entities: Sequence[Any],
    brand_mentions: Sequence[Any],
    now: datetime | None = None,
) -> dict[str, int]:
    """Replace the enrichment of the given posts in one transaction."""
    now = now or datetime.now(UTC)
    annotations = dedupe_last(annotations, ("source", "post_id", "task"))
    entities = dedupe_last(entities, ("source", "post_id", "start_char", "end_char", "label"))
    brand_mentions = dedupe_last(brand_mentions, ("source", "post_id", "brand", "start_char"))
    keys = pa.table({"source": [k[0] for k in post_keys], "post_id": [k[1] for k in post_keys]})
    with transaction(con):
        con.register("_enriched", keys)
        try:
            # Spans and mentions are sets per post: a new model may find different ones.
            for table in ("entities", "brand_mentions"):
                con.execute(
                    f"DELETE FROM {table} t USING _enriched k WHERE t.source = k.source AND t.post_id = k.post_id"
                )
        finally:
            con.unregister("_enriched")
        upsert(con, "annotations", records_to_arrow(annotations, ANNOTATION_SCHEMA, {"annotated_at": now}),
               ("source", "post_id", "task"))
        upsert(con, "entities", records_to_arrow(entities, ENTITY_SCHEMA),
               ("source", "post_id", "start_char", "end_char", "label"))
        upsert(con, "brand_mentions", records_to_arrow(brand_mentions, BRAND_MENTION_SCHEMA),
               ("source", "post_id", "brand", "start_char"))
    return {"annotations": len(annotations), "entities": len(entities), "brand_mentions": len(brand_mentions)}


# ---- rank ---------------------------------------------------------------------------------

def save_scores(con: duckdb.DuckDBPyConnection, scores: Sequence[Any], run_id: str) -> int:
    """Store one ranking; a re-ranking of the same data window (same as_of) replaces it."""
    if not scores:
        return 0
    as_of = {s.as_of for s in scores}
    batch = records_to_arrow(scores, SCORE_SCHEMA, {"run_id": run_id})
    with transaction(con):
        con.register("_as_of", pa.table({"as_of": pa.array(sorted(as_of), TIMESTAMP)}))
        try:
            con.execute("DELETE FROM influence_scores s USING _as_of a WHERE s.as_of = a.as_of")
        finally:
            con.unregister("_as_of")
        upsert(con, "influence_scores", batch, ("as_of", "source", "account_id"))
    return batch.num_rows


# ---- act ----------------------------------------------------------------------------------

def save_alerts(con: duckdb.DuckDBPyConnection, alerts: Sequence[Any]) -> int:
    """Store fired alerts; an alert id seen before is not stored (or delivered) again."""
    if not alerts:
        return 0
    known = {row[0] for row in con.execute("SELECT alert_id FROM alerts").fetchall()}
    fresh = [a for a in dedupe_last(alerts, ("alert_id",)) if a.alert_id not in known]
    upsert(con, "alerts", records_to_arrow(fresh, ALERT_SCHEMA), ("alert_id",), update=False)
    return len(fresh)


# ---- runs ---------------------------------------------------------------------------------

def save_source_run(con: duckdb.DuckDBPyConnection, run_id: str, source_name: str, connector: str, stream: str,
                    started_at: datetime, status: str, counts: dict[str, int], stats: Any = None,
                    error: str | None = None) -> None:
    """Record one source's collect attempt: counts, rate-limit waits, retries and how it ended.

    Prefect retries a failed collect task within the same run; each attempt adds its counts to
    the run's row, so the pages an earlier attempt stored and the waits it sat out stay visible.
    """
    con.execute(
        """
        INSERT INTO source_runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT (run_id, source_name) DO UPDATE SET
            finished_at = excluded.finished_at,
            status = excluded.status,
            pages = source_runs.pages + excluded.pages,
            posts = source_runs.posts + excluded.posts,
            quarantined = source_runs.quarantined + excluded.quarantined,
            requests = coalesce(source_runs.requests, 0) + coalesce(excluded.requests, 0),
            retries = coalesce(source_runs.retries, 0) + coalesce(excluded.retries, 0),
            rate_limit_waits = coalesce(source_runs.rate_limit_waits, 0) + coalesce(excluded.rate_limit_waits, 0),
            waited_seconds = coalesce(source_runs.waited_seconds, 0) + coalesce(excluded.waited_seconds, 0),
            skipped = excluded.skipped,
            error = excluded.error
        """,
        [run_id, source_name, connector, stream, started_at, datetime.now(UTC), status,
         counts.get("pages", 0), counts.get("posts", 0), counts.get("quarantine", 0),
         getattr(stats, "requests", None), getattr(stats, "retries", None),
         getattr(stats, "rate_limit_waits", None), getattr(stats, "waited_seconds", None),
         json.dumps(getattr(stats, "skipped", None) or {}, sort_keys=True), error],
    )


def start_run(con: duckdb.DuckDBPyConnection, run_id: str, flow: str) -> None:
    con.execute(
        "INSERT INTO pipeline_runs VALUES (?, ?, ?, NULL, 'running', NULL) ON CONFLICT (run_id) DO NOTHING",
        [run_id, flow, datetime.now(UTC)],
    )


def finish_run(con: duckdb.DuckDBPyConnection, run_id: str, status: str, counts: dict[str, Any]) -> None:
    con.execute(
        "UPDATE pipeline_runs SET finished_at = ?, status = ?, counts = ? WHERE run_id = ?",
        [datetime.now(UTC), status, json.dumps(counts, sort_keys=True, default=str), run_id],
    )
