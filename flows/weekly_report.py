"""`weekly_report_flow`: render the marketing report as HTML and PDF and mail it."""

from __future__ import annotations

from typing import Any

from prefect import flow

from act.facts import select_brands
from flows.act_tasks import mail_report, render_report_files
from flows.scheduled import LOCK_WAIT_SECONDS, as_writer, flow_settings


@flow(name="weekly_report")
def weekly_report_flow(config_file: str | None = None, duckdb_path: str | None = None,
                       period: str = "last-week", brands: list[str] | None = None,
                       report_dir: str | None = None, mail: bool = True,
                       lock_wait_seconds: float = LOCK_WAIT_SECONDS) -> dict[str, Any]:
    """Write the report for the period and mail it to the configured recipients."""
    settings = flow_settings(config_file, duckdb_path, report_dir)
    # The report only reads, but DuckDB refuses a reader while another process writes: wait
    # for the writer lock too, for the few seconds the queries take.
    tracked = select_brands(settings.brands, brands)
    files = as_writer(settings, lock_wait_seconds, lambda: render_report_files(settings, tracked, period))
    if isinstance(files, dict):
        return files
    sent = mail_report(settings, files) if mail and settings.smtp.host else None
    return {"html": files.html, "pdf": files.pdf, "mailed": bool(sent and sent.ok),
            "mail_error": sent.error if sent and not sent.ok else None}
