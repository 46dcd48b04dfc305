"""Prefect tasks for the scheduled act stage: evaluate and store alerts, deliver them, write reports.

Delivery tasks are not retried by Prefect: `act.notify` already retries each channel on its own
(transient SMTP replies, 429/5xx, network errors), and a task-level retry would send again to the
channels that had succeeded. What still fails is stored as a dead letter in `deliveries`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from act.alerts import SEVERITY_ORDER, Alert, evaluate_alerts, suppress_repeats
from act.notify import DeliveryResult, format_alerts_html, format_alerts_text, post_webhook, send_email
from act.report import period_window, write_report_files
from resonanz.settings import Brand, Settings
from warehouse.db import open_warehouse, transaction
from warehouse.stages import save_alerts


@dataclass(frozen=True)
class ReportFiles:
    html: str
    pdf: str | None
    period: str
    start: datetime | None
    end: datetime | None


@task(name="evaluate_alerts", cache_policy=NO_CACHE)
def evaluate_and_store_alerts(settings: Settings, brands: list[Brand]) -> list[Alert]:
    """Evaluate every rule, drop repeats inside the cooldown, store the rest; return the new alerts."""
    logger = get_run_logger()
    with closing(open_warehouse(settings.duckdb_path)) as con:
        evaluated = evaluate_alerts(con, settings.alerts, brands)
        fresh = suppress_repeats(con, evaluated, settings.alerts.cooldown_minutes)
        stored = save_alerts(con, fresh)
    logger.info("alerts: %d evaluated, %d after cooldown and de-duplication, %d stored",
                len(evaluated), len(fresh), stored)
    return fresh


@task(name="deliver_alerts", cache_policy=NO_CACHE)
def deliver_alerts(settings: Settings, alerts: list[Alert]) -> list[DeliveryResult]:
    """Send alerts at or above the delivery severity by e-mail and to every configured webhook."""
    logger = get_run_logger()
    floor = SEVERITY_ORDER[settings.alerts.deliver_min_severity]
    chosen = [a for a in alerts if SEVERITY_ORDER[a.severity] >= floor][: settings.alerts.max_alerts_per_message]
    if not chosen:
        logger.info("deliver: nothing at or above %s", settings.alerts.deliver_min_severity)
        return []
    results = []
    if settings.smtp.host and settings.smtp.recipients:
        subject = f"Resonanz: {len(chosen)} alert(s), most severe {chosen[0].severity}"
        results.append(send_email(settings.smtp, subject, format_alerts_html(chosen), format_alerts_text(chosen)))
    for hook in settings.alerts.webhooks:
        results.append(post_webhook(hook.url.get_secret_value(), chosen, hook.flavor))
    if not results:
        logger.info("deliver: no channel configured (set [smtp] or alerts.webhooks); %d alert(s) stored only",
                    len(chosen))
    for result in results:
        log = logger.info if result.ok else logger.warning
        log("deliver %s to %s: %s after %d attempt(s)%s", result.channel, result.target,
            "ok" if result.ok else "FAILED", result.attempts, f" ({result.error})" if result.error else "")
    return results


def save_deliveries(settings: Settings, alert_ids: list[str], results: Sequence[DeliveryResult]) -> int:
    """Record each delivery; a failed one keeps its payload as a dead letter to resend."""
    if not results:
        return 0
    now = datetime.now(UTC)
    with closing(open_warehouse(settings.duckdb_path)) as con, transaction(con):
        for r in results:
            key = "\x1f".join([r.channel, r.target, *sorted(alert_ids)])
            delivery_id = hashlib.sha256(key.encode()).hexdigest()[:32]
            payload = None if r.ok else json.dumps(r.payload, ensure_ascii=False, default=str)
            con.execute(
                "INSERT OR REPLACE INTO deliveries VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [delivery_id, r.channel, r.target, sorted(alert_ids), r.ok, r.attempts, r.status, r.error,
                 payload, now],
            )
    return len(results)


@task(name="render_report", cache_policy=NO_CACHE)
def render_report_files(settings: Settings, brands: list[Brand], period: str, pdf: bool = True) -> ReportFiles:
    """Write the report for a named period as HTML (and PDF) into the report directory."""
    logger = get_run_logger()
    out_dir = Path(settings.report_dir)
    with closing(open_warehouse(settings.duckdb_path, read_only=True)) as con:
        start, end = period_window(con, period)
        stem = f"resonanz-{period}-{end:%Y-%m-%d}" if end else f"resonanz-{period}"
        html, pdf_path = write_report_files(con, brands, out_dir / stem, start, end, pdf)
    logger.info("report %s written: %s%s", period, html, f" and {pdf_path}" if pdf_path else "")
    return ReportFiles(str(html), str(pdf_path) if pdf_path else None, period, start, end)


@task(name="mail_report", cache_policy=NO_CACHE)
def mail_report(settings: Settings, files: ReportFiles) -> DeliveryResult:
    """Mail the report to the configured recipients, the PDF attached."""
    logger = get_run_logger()
    span = f"{files.start:%d.%m.%Y} – {files.end:%d.%m.%Y}" if files.start and files.end else "all data"
    subject = f"Resonanz report ({files.period}: {span})"
    html = Path(files.html).read_text(encoding="utf-8")
    text = f"The Resonanz listening report for {span} is attached as PDF; open the HTML part for the web version."
    attachments = [Path(files.pdf)] if files.pdf else []
    result = send_email(settings.smtp, subject, html, text, attachments)
    (logger.info if result.ok else logger.warning)(
        "report mail to %s: %s", result.target or "nobody", "sent" if result.ok else result.error)
    return result


def delivery_summary(results: Sequence[DeliveryResult]) -> dict[str, Any]:
    """Count delivered and dead-lettered messages per channel."""
    summary: dict[str, Any] = {"delivered": 0, "dead_letters": 0, "channels": {}}
    for r in results:
        summary["delivered" if r.ok else "dead_letters"] += 1
        summary["channels"][r.channel] = "ok" if r.ok else (r.error or "failed")
    return summary
