"""`listening_pipeline`: collect → enrich → rank → store and link → act, as one Prefect flow.

The flow only wires the rooms' stages (flows/tasks.py) together and records the run.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from typing import Any

from prefect import flow

from flows.tasks import (
    TopAccount,
    collect_source,
    enrich_posts,
    link_customers,
    rank_influence,
    report_and_alert,
)
from flows.scheduled import LOCK_WAIT_SECONDS
from flows.writer_lock import writer_lock
from resonanz.settings import Settings, load_settings
from warehouse.db import open_warehouse
from warehouse.stages import finish_run, start_run


@dataclass
class PipelineResult:
    run_id: str
    duckdb_path: str
    report_path: str | None
    stage_counts: dict[str, dict[str, Any]] = field(default_factory=dict)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    top: list[TopAccount] = field(default_factory=list)
    alerts_fired: int = 0


def _timed(result: PipelineResult, stage: str, work: Callable[[], Any]) -> Any:
    started = time.perf_counter()
    value = work()
    result.stage_seconds[stage] = time.perf_counter() - started
    return value


@flow(name="listening_pipeline", log_prints=True)
def listening_pipeline(
    config_file: str | None = None,
    duckdb_path: str | None = None,
    sources: list[str] | None = None,
    report_dir: str | None = None,
    alert_period: str = "last-week",
) -> PipelineResult:
    """Run the whole pipeline once over the configured (or the named) sources.

    `alert_period` is "last-week" (the 7 days up to the newest post) or "all" (every post).
    """
    overrides: dict[str, Any] = {}
    if duckdb_path:
        overrides["duckdb_path"] = duckdb_path
    if report_dir:
        overrides["report_dir"] = report_dir
    settings = load_settings(config_file, **overrides)
    # One writer at a time: a scheduled run (or a second `resonanz run`) waits, then gives up clearly.
    with writer_lock(settings.duckdb_path, LOCK_WAIT_SECONDS):
        return _run(settings, sources, alert_period)


def _run(settings: Settings, sources: list[str] | None, alert_period: str) -> PipelineResult:
    run_id = uuid.uuid4().hex
    result = PipelineResult(run_id=run_id, duckdb_path=str(settings.duckdb_path), report_path=None)
    with closing(open_warehouse(settings.duckdb_path)) as con:
        start_run(con, run_id, "listening_pipeline")

    status = "failed"
    try:
        names = sources or [s.name for s in settings.sources if s.enabled]
        result.stage_counts["collect"] = _timed(
            result, "collect", lambda: {name: collect_source(settings, name, run_id) for name in names})
        result.stage_counts["enrich"] = _timed(result, "enrich", lambda: enrich_posts(settings))
        # Link before ranking: the ranking counts accounts the CRM links to one customer as one
        # person, so it should see this run's links, not the previous run's.
        result.stage_counts["link"] = _timed(result, "link", lambda: link_customers(settings))
        result.top = _timed(result, "rank", lambda: rank_influence(settings, run_id))
        acted = _timed(result, "act", lambda: report_and_alert(settings, alert_period))
        result.stage_counts["act"] = acted
        result.report_path = acted["report"]
        result.alerts_fired = acted["alerts_new"]
        status = "completed"
    finally:
        with closing(open_warehouse(settings.duckdb_path)) as con:
            finish_run(con, run_id, status, {**result.stage_counts, "seconds": result.stage_seconds})
    return result
