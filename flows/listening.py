"""`listening_pipeline`: collect → enrich → rank → store and link → act, as one Prefect flow.

The flow only wires the rooms together. Each task opens the DuckDB file, does one stage and
closes it again, and tasks run one after another: DuckDB allows one writing process, and the
stages depend on each other anyway. Only the collect task retries (it does network I/O and
resumes from its stored cursor); the other stages are deterministic over the warehouse.
"""

from __future__ import annotations

import time
import uuid
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from act.alerts import evaluate_alerts
from act.report import render_report
from connectors.registry import build_connector
from graph.influence import rank_accounts
from nlp.pipeline import Enricher
from nlp.records import PostText
from resonanz.settings import Settings, load_settings, resolve_path
from warehouse.crm import import_customers, import_identities, link_accounts_by_handle
from warehouse.db import open_warehouse
from warehouse.load import LoadCounts, load_cursor, load_pages
from warehouse.stages import (
    accounts_table,
    finish_run,
    interactions_table,
    post_signals,
    posts_to_enrich,
    save_alerts,
    save_enrichment,
    save_scores,
    start_run,
)

ENRICH_BATCH = 256


@dataclass
class TopAccount:
    rank: int
    source: str
    account_id: str
    handle: str
    score: float
    explanation: str


@dataclass
class PipelineResult:
    run_id: str
    duckdb_path: str
    report_path: str | None
    stage_counts: dict[str, dict[str, Any]] = field(default_factory=dict)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    top: list[TopAccount] = field(default_factory=list)
    alerts_fired: int = 0


@task(name="collect", retries=2, retry_delay_seconds=5, cache_policy=NO_CACHE)
def collect_source(settings: Settings, source_name: str) -> dict[str, Any]:
    """Pull one configured source page by page, storing each page with its cursor."""
    logger = get_run_logger()
    spec = settings.source(source_name)
    connector = build_connector(spec, settings)
    totals = LoadCounts()
    pages = 0
    with closing(open_warehouse(settings.duckdb_path)) as con:
        cursor = load_cursor(con, spec.name, spec.stream)
        for page in connector.fetch(cursor):
            for table, n in load_pages(con, [page]).counts.items():
                totals.add(table, n)
            pages += 1
    logger.info("collected %s: %d pages, %s", source_name, pages, totals.counts)
    return {"pages": pages, **totals.counts}


@task(name="enrich", cache_policy=NO_CACHE)
def enrich_posts(settings: Settings) -> dict[str, Any]:
    """Annotate every post that lacks an annotation from the current model versions."""
    logger = get_run_logger()
    enricher = Enricher(settings.brands)
    totals: dict[str, Any] = {"posts": 0, "annotations": 0, "entities": 0, "brand_mentions": 0}
    with closing(open_warehouse(settings.duckdb_path)) as con:
        todo = posts_to_enrich(con, enricher.model_versions()).to_pylist()
        for start in range(0, len(todo), ENRICH_BATCH):
            rows = todo[start : start + ENRICH_BATCH]
            posts = [PostText(r["source"], r["post_id"], r["text"], r["lang_hint"]) for r in rows]
            result = enricher.enrich(posts)
            saved = save_enrichment(
                con, [(p.source, p.post_id) for p in posts],
                result.annotations, result.entities, result.brand_mentions,
            )
            totals["posts"] += len(posts)
            for key, n in saved.items():
                totals[key] += n
    logger.info("enriched %d posts (%s)", totals["posts"], enricher.model_versions())
    return totals


@task(name="rank", cache_policy=NO_CACHE)
def rank_influence(settings: Settings, run_id: str) -> list[TopAccount]:
    """Rank accounts on the interaction graph and store the scores with their explanations."""
    logger = get_run_logger()
    with closing(open_warehouse(settings.duckdb_path)) as con:
        accounts = accounts_table(con)
        scores = rank_accounts(interactions_table(con), settings.graph, post_signals(con), accounts)
        save_scores(con, scores, run_id)
    handles = {
        (s, a): h for s, a, h in zip(
            accounts["source"].to_pylist(), accounts["account_id"].to_pylist(), accounts["handle"].to_pylist()
        )
    }
    top = [
        TopAccount(s.rank, s.source, s.account_id, handles.get((s.source, s.account_id)) or s.account_id,
                   s.score, s.explanation)
        for s in scores[: settings.graph.top_n]
    ]
    logger.info("ranked %d accounts", len(scores))
    return top


@task(name="link_crm", cache_policy=NO_CACHE)
def link_customers(settings: Settings) -> dict[str, int]:
    """Load the CRM export and link social accounts to customers."""
    crm = settings.crm
    counts = {"customers": 0, "identities": 0, "links": 0}
    with closing(open_warehouse(settings.duckdb_path)) as con:
        if crm.customers_csv:
            counts["customers"] = import_customers(con, resolve_path(crm.customers_csv), crm.crm_source)
        if crm.identities_csv:
            counts["identities"] = import_identities(con, resolve_path(crm.identities_csv))
        counts["links"] = link_accounts_by_handle(con)
    return counts


@task(name="act", cache_policy=NO_CACHE)
def report_and_alert(settings: Settings) -> dict[str, Any]:
    """Write the HTML report and store the alerts that fire."""
    report_path = Path(settings.report_dir) / "listening-report.html"
    with closing(open_warehouse(settings.duckdb_path)) as con:
        render_report(con, settings.brands, report_path)
        alerts = evaluate_alerts(con, settings.alerts, settings.brands)
        fired = save_alerts(con, alerts)
    return {"report": str(report_path), "alerts_evaluated": len(alerts), "alerts_new": fired}


@flow(name="listening_pipeline", log_prints=True)
def listening_pipeline(
    config_file: str | None = None,
    duckdb_path: str | None = None,
    sources: list[str] | None = None,
    report_dir: str | None = None,
) -> PipelineResult:
    """Run the whole pipeline once over the configured (or the named) sources."""
    overrides: dict[str, Any] = {}
    if duckdb_path:
        overrides["duckdb_path"] = duckdb_path
    if report_dir:
        overrides["report_dir"] = report_dir
    settings = load_settings(config_file, **overrides)
    run_id = uuid.uuid4().hex
    result = PipelineResult(run_id=run_id, duckdb_path=str(settings.duckdb_path), report_path=None)
    with closing(open_warehouse(settings.duckdb_path)) as con:
        start_run(con, run_id, "listening_pipeline")

    status = "failed"
    try:
        names = sources or [s.name for s in settings.sources if s.enabled]
        started = time.perf_counter()
        collected = {name: collect_source(settings, name) for name in names}
        result.stage_seconds["collect"] = time.perf_counter() - started
        result.stage_counts["collect"] = collected

        started = time.perf_counter()
        result.stage_counts["enrich"] = enrich_posts(settings)
        result.stage_seconds["enrich"] = time.perf_counter() - started

        started = time.perf_counter()
        result.top = rank_influence(settings, run_id)
        result.stage_seconds["rank"] = time.perf_counter() - started

        started = time.perf_counter()
        result.stage_counts["link"] = link_customers(settings)
        result.stage_seconds["link"] = time.perf_counter() - started

        started = time.perf_counter()
        acted = report_and_alert(settings)
        result.stage_seconds["act"] = time.perf_counter() - started
        result.stage_counts["act"] = acted
        result.report_path = acted["report"]
        result.alerts_fired = acted["alerts_new"]
        status = "completed"
    finally:
        with closing(open_warehouse(settings.duckdb_path)) as con:
            finish_run(con, run_id, status, {**result.stage_counts, "seconds": result.stage_seconds})
    return result
