"""The scheduled stages as separate flows: collect, enrich and rank, retention.

Each takes the warehouse's writer lock (flows/writer_lock.py) for the time it writes: a second
run of the same or another flow waits up to `lock_wait_seconds`, then skips with a log line
saying so, instead of failing on DuckDB's lock or writing at the same time.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from contextlib import closing
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from prefect import flow, get_run_logger

from flows.tasks import collect_source, enrich_posts, link_customers, rank_influence
from flows.writer_lock import WriterBusy, writer_lock
from resonanz.settings import Settings, load_settings
from warehouse.db import open_warehouse
from warehouse.retention import apply_retention

T = TypeVar("T")
LOCK_WAIT_SECONDS = 60.0


def flow_settings(config_file: str | None, duckdb_path: str | None, report_dir: str | None = None) -> Settings:
    """Load the project's settings, with the flow's parameters overriding the file."""
    overrides: dict[str, Any] = {}
    if duckdb_path:
        overrides["duckdb_path"] = duckdb_path
    if report_dir:
        overrides["report_dir"] = report_dir
    return load_settings(config_file, **overrides)


def as_writer(settings: Settings, wait_seconds: float, work: Callable[[], T]) -> T | dict[str, Any]:
    """Run `work` holding the writer lock; on timeout log why and return {"skipped": reason}."""
    logger = get_run_logger()
    try:
        with writer_lock(settings.duckdb_path, wait_seconds):
            return work()
    except WriterBusy as exc:
        logger.warning("skipped: %s", exc)
        return {"skipped": str(exc)}


@flow(name="collect")
def collect_flow(config_file: str | None = None, duckdb_path: str | None = None,
                 sources: list[str] | None = None, lock_wait_seconds: float = LOCK_WAIT_SECONDS) -> dict[str, Any]:
    """Collect the configured (or the named) sources; each resumes from its stored cursor."""
    settings = flow_settings(config_file, duckdb_path)
    names = sources or [s.name for s in settings.sources if s.enabled]
    run_id = uuid.uuid4().hex
    return as_writer(settings, lock_wait_seconds,
                     lambda: {name: collect_source(settings, name, run_id) for name in names})


@flow(name="enrich_and_rank")
def enrich_rank_flow(config_file: str | None = None, duckdb_path: str | None = None,
                     lock_wait_seconds: float = LOCK_WAIT_SECONDS) -> dict[str, Any]:
    """Enrich new posts, link CRM customers and re-rank influence."""
    settings = flow_settings(config_file, duckdb_path)

    def work() -> dict[str, Any]:
        enriched = enrich_posts(settings)
        linked = link_customers(settings)
        top = rank_influence(settings, uuid.uuid4().hex)
        return {"enrich": enriched, "link": linked, "ranked_top": len(top)}

    return as_writer(settings, lock_wait_seconds, work)


@flow(name="retention")
def retention_flow(config_file: str | None = None, duckdb_path: str | None = None,
                   retention_days: int = 365, lock_wait_seconds: float = LOCK_WAIT_SECONDS) -> dict[str, Any]:
    """Apply the configured retention policies (Settings.retention) and count posts past `retention_days`."""
    logger = get_run_logger()
    settings = flow_settings(config_file, duckdb_path)

    def work() -> dict[str, Any]:
        cutoff = datetime.now(UTC) - timedelta(days=retention_days)
        with closing(open_warehouse(settings.duckdb_path)) as con:
            report = apply_retention(con, list(settings.retention))
            old_posts = con.execute("SELECT count(*) FROM posts WHERE created_at < ?", [cutoff]).fetchone()[0]  # type: ignore[index]
        logger.info("retention: raw payloads deleted %s, pseudonymised %s (%d policies); %d post(s) older than %d days",
                    report.deleted or 0, report.pseudonymised or 0, len(settings.retention), old_posts, retention_days)
        return {"older_than_days": retention_days, "posts_older": int(old_posts), "deleted": report.total_deleted}

    return as_writer(settings, lock_wait_seconds, work)
