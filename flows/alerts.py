"""`alerts_flow`: evaluate the alert rules, store what is new, deliver it by e-mail and webhooks."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from act.facts import select_brands

from flows.act_tasks import (
    delivery_summary,
    deliver_alerts,
    evaluate_and_store_alerts,
    save_deliveries,
)
from flows.scheduled import LOCK_WAIT_SECONDS, as_writer, flow_settings


@flow(name="alerts")
def alerts_flow(config_file: str | None = None, duckdb_path: str | None = None, brands: list[str] | None = None,
                deliver: bool = True, lock_wait_seconds: float = LOCK_WAIT_SECONDS) -> dict[str, Any]:
    """Evaluate alerts for the named brands (default: all), store new ones and deliver them."""
    logger = get_run_logger()
    settings = flow_settings(config_file, duckdb_path)
    tracked = select_brands(settings.brands, brands)
    # Hold the writer lock only while touching DuckDB: delivery may wait on slow servers.
    fresh = as_writer(settings, lock_wait_seconds, lambda: evaluate_and_store_alerts(settings, tracked))
    if isinstance(fresh, dict):
        return fresh
    results = deliver_alerts(settings, fresh) if deliver else []
    if results:
        ids = [a.alert_id for a in fresh]
        as_writer(settings, lock_wait_seconds, lambda: save_deliveries(settings, ids, results))
    summary = {"new_alerts": len(fresh), "by_rule": _count_rules(fresh), **delivery_summary(results)}
    logger.info("alerts flow: %s", summary)
    return summary


def _count_rules(alerts: list[Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for alert in alerts:
        counts[alert.rule] = counts.get(alert.rule, 0) + 1
    return counts
