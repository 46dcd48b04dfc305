"""The pipeline's Prefect tasks: each opens the warehouse, runs one room's stage, closes it.

Tasks run one after another: DuckDB allows one writing process, and the stages depend on each
other anyway. Only collect retries (network I/O; it resumes from the cursor stored with each
page); the other stages are deterministic over the warehouse, so a retry would not help.
"""

from __future__ import annotations

from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from act.alerts import evaluate_alerts, evaluation_window
from act.report import render_report
from connectors.registry import build_connector
from graph.ranking import rank_all
from nlp.pipeline import POSTS_PER_CALL, build_enricher, models_out_of_gc
from nlp.records import PostText
from resonanz.settings import Settings, resolve_path
from warehouse.crm import import_customers, import_identities, link_accounts_by_handle
from warehouse.customer_value import compute_customer_value, import_invoices
from warehouse.db import open_warehouse
from warehouse.graph_store import (
    brand_posts,
    person_links,
    ranking_accounts,
    ranking_interactions,
    ranking_post_signals,
    save_ranking,
    score_history,
)
from warehouse.linking import link_accounts_probabilistic
from warehouse.load import LoadCounts, load_cursor, load_pages
from warehouse.stages import (
    posts_to_enrich,
    save_alerts,
    save_enrichment,
    save_source_run,
)


@dataclass
class TopAccount:
    rank: int
    source: str
    account_id: str
    handle: str
    score: float
    explanation: str


@task(name="collect", retries=2, retry_delay_seconds=5, cache_policy=NO_CACHE)
def collect_source(settings: Settings, source_name: str, run_id: str) -> dict[str, Any]:
    """Pull one configured source page by page, storing each page with its cursor.

    A retry (or the next run) resumes from the cursor stored with the last page, so what was
    stored before a failure is neither fetched twice nor lost.
    """
    logger = get_run_logger()
    spec = settings.source(source_name)
    connector = build_connector(spec, settings)
    totals = LoadCounts()
    pages = 0
    started = datetime.now(UTC)
    with closing(open_warehouse(settings.duckdb_path)) as con:
        cursor = load_cursor(con, spec.name, spec.stream)
        try:
            for page in connector.fetch(cursor):
                for table, n in load_pages(con, [page]).counts.items():
                    totals.add(table, n)
                pages += 1
        except Exception as exc:
            save_source_run(con, run_id, spec.name, spec.connector, spec.stream, started, "failed",
                            {"pages": pages, **totals.counts}, getattr(connector, "stats", None),
                            f"{type(exc).__name__}: {exc}")
            raise
        save_source_run(con, run_id, spec.name, spec.connector, spec.stream, started, "completed",
                        {"pages": pages, **totals.counts}, getattr(connector, "stats", None))
    logger.info("collected %s: %d pages, %s", source_name, pages, totals.counts)
    return {"pages": pages, **totals.counts}


@task(name="enrich", cache_policy=NO_CACHE)
def enrich_posts(settings: Settings) -> dict[str, Any]:
    """Annotate every post that lacks an annotation from the current model versions."""
    logger = get_run_logger()
    enricher = build_enricher(settings.brands, settings.nlp)
    totals: dict[str, Any] = {"posts": 0, "annotations": 0, "entities": 0, "brand_mentions": 0}
    with closing(open_warehouse(settings.duckdb_path)) as con, models_out_of_gc() as loaded:
        todo = posts_to_enrich(con, enricher.model_versions()).to_pylist()
        for start in range(0, len(todo), POSTS_PER_CALL):
            rows = todo[start : start + POSTS_PER_CALL]
            posts = [PostText(r["source"], r["post_id"], r["text"], r["lang_hint"]) for r in rows]
            result = enricher.enrich(posts)
            loaded()  # the first call loaded every model
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
    """Rank accounts, groups, bots and risers on the interaction graph and store all of it."""
    logger = get_run_logger()
    with closing(open_warehouse(settings.duckdb_path)) as con:
        accounts = ranking_accounts(con)
        # Accounts the CRM ties to one customer count as one person (links from earlier runs).
        result = rank_all(ranking_interactions(con), settings.graph, ranking_post_signals(con), accounts,
                          history=score_history(con), brand_posts=brand_posts(con), identities=person_links(con))
        stored = save_ranking(con, result, run_id)
    handles = {
        (s, a): h for s, a, h in zip(
            accounts["source"].to_pylist(), accounts["account_id"].to_pylist(), accounts["handle"].to_pylist()
        )
    }
    top = [
        TopAccount(s.rank, s.source, s.account_id, handles.get((s.source, s.account_id)) or s.account_id,
                   s.score, s.explanation)
        for s in result.scores[: settings.graph.top_n]
    ]
    logger.info("ranked %d accounts; stored %s", len(result.scores), stored)
    return top


@task(name="link_crm", cache_policy=NO_CACHE)
def link_customers(settings: Settings) -> dict[str, Any]:
    """Load the CRM exports, link social accounts to customers, and score customer value."""
    crm = settings.crm
    counts: dict[str, Any] = {"customers": 0, "identities": 0, "invoices": 0}
    with closing(open_warehouse(settings.duckdb_path)) as con:
        if crm.customers_csv:
            counts["customers"] = import_customers(con, resolve_path(crm.customers_csv), crm.crm_source)
        if crm.identities_csv:
            counts["identities"] = import_identities(con, resolve_path(crm.identities_csv))
        link_accounts_by_handle(con)
        summary = link_accounts_probabilistic(con, crm.auto_link_threshold, crm.review_threshold)
        counts["links_auto"], counts["links_review"] = summary.auto, summary.review
        if crm.invoices_csv:
            counts["invoices"] = import_invoices(con, resolve_path(crm.invoices_csv), crm.crm_source)
            counts["customers_valued"] = compute_customer_value(con).customers
        counts["links"] = int(con.execute("SELECT count(*) FROM account_customer_links").fetchone()[0])  # type: ignore[index]
    return counts


@task(name="act", cache_policy=NO_CACHE)
def report_and_alert(settings: Settings, alert_period: str = "last-week") -> dict[str, Any]:
    """Write the HTML report and store the alerts that fire in `alert_period`."""
    report_path = Path(settings.report_dir) / "listening-report.html"
    with closing(open_warehouse(settings.duckdb_path)) as con:
        render_report(con, settings.brands, report_path)
        start, end = evaluation_window(con, alert_period)
        alerts = evaluate_alerts(con, settings.alerts, settings.brands, start, end)
        fired = save_alerts(con, alerts)
    return {"report": str(report_path), "alerts_evaluated": len(alerts), "alerts_new": fired}
