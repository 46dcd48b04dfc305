"""The alerts flow end to end on the fixture warehouse: mail to aiosmtpd, webhooks to a local HTTP server.

Two flow runs on the session's Prefect harness: one that evaluates, stores and delivers (with one
webhook that always fails, so a dead letter is stored), and one that finds the writer lock held.
"""

from __future__ import annotations

import json
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flow_support import http_receiver, smtp_server, write_project_config

from act.alerts import Alert, suppress_repeats
from flows.writer_lock import WriterBusy, writer_lock
from resonanz.settings import Brand
from warehouse.db import open_warehouse


def test_alerts_flow_stores_and_delivers_by_mail_and_webhook_with_a_dead_letter(
    prefect_harness: None, warehouse_file: Path, brands: list[Brand], tmp_path: Path
) -> None:
    from flows.alerts import alerts_flow

    db = tmp_path / "w.duckdb"
    db.write_bytes(warehouse_file.read_bytes())
    with smtp_server() as (inbox, smtp_port), http_receiver() as (received, http_port):
        hooks = [
            {"url": f"http://127.0.0.1:{http_port}/slack/T000/B000/secret-token", "flavor": "slack"},
            {"url": f"http://127.0.0.1:{http_port}/teams/workflow", "flavor": "teams"},
            {"url": f"http://127.0.0.1:{http_port}/fail/secret-token", "flavor": "json"},
        ]
        extra = (f'[smtp]\nhost = "127.0.0.1"\nport = {smtp_port}\nstarttls = false\n'
                 'recipients = ["brand-team@example.org"]\n\n[alerts]\ndeliver_min_severity = "warning"\n'
                 + "".join(f'[[alerts.webhooks]]\nurl = "{h["url"]}"\nflavor = "{h["flavor"]}"\n' for h in hooks))
        config = write_project_config(tmp_path / "resonanz.toml", brands, extra)
        summary = alerts_flow(config_file=str(config), duckdb_path=str(db))

    assert summary["new_alerts"] >= 3
    assert summary["delivered"] == 3 and summary["dead_letters"] == 1
    assert summary["channels"]["webhook:json"].startswith("HTTP 500")

    # Mail: one message to the brand team listing the alerts, most severe first.
    assert len(inbox.messages) == 1
    rcpts, mail = inbox.messages[0]
    assert rcpts == ["brand-team@example.org"]
    assert mail["Subject"].startswith("Resonanz: ") and "most severe critical" in mail["Subject"]
    body = mail.get_body(preferencelist=("plain",)).get_content()
    assert "[CRITICAL]" in body and "volume_spike" in body

    # Webhooks: Slack blocks and a Teams Adaptive Card arrived; the failing one was tried 3 times.
    paths = [p for p, _ in received]
    assert paths.count("/fail/secret-token") == 3
    slack = next(body for p, body in received if p.startswith("/slack"))
    assert slack["blocks"][0]["type"] == "header" and "critical" in slack["text"]
    print(f"--- mail {mail['Subject']!r} to {rcpts}\n{body}\n--- slack\n{json.dumps(slack, ensure_ascii=False)[:900]}")
    teams = next(body for p, body in received if p.startswith("/teams"))
    assert teams["attachments"][0]["contentType"] == "application/vnd.microsoft.card.adaptive"

    with closing(open_warehouse(db, read_only=True)) as con:
        stored = con.execute("SELECT rule, severity, evidence FROM alerts").fetchall()
        deliveries = con.execute("SELECT channel, target, ok, attempts, status, payload FROM deliveries "
                                 "ORDER BY channel").fetchall()
        dead = con.execute("SELECT channel, attempts, error, payload FROM v_dead_letters").fetchall()
    assert len(stored) == summary["new_alerts"]
    assert {r[0] for r in stored} >= {"volume_spike", "influencer_negative"}
    spike = next(json.loads(r[2]) for r in stored if r[0] == "volume_spike")
    assert spike["post_ids"] and spike["z"] >= 4.0 and spike["baseline"].startswith("same hour")
    assert [(d[0], d[2]) for d in deliveries] == [
        ("email", True), ("webhook:json", False), ("webhook:slack", True), ("webhook:teams", True)]
    # Targets are redacted: a webhook's path is its secret and never reaches DuckDB.
    assert all("secret-token" not in d[1] for d in deliveries)
    assert len(dead) == 1 and dead[0][1] == 3 and "500" in dead[0][2]
    assert json.loads(dead[0][3])["alerts"], "the dead letter keeps what was to be sent"


def test_alerts_flow_skips_clearly_while_another_run_writes(
    prefect_harness: None, warehouse_file: Path, brands: list[Brand], tmp_path: Path
) -> None:
    from flows.alerts import alerts_flow

    db = tmp_path / "w.duckdb"
    db.write_bytes(warehouse_file.read_bytes())
    config = write_project_config(tmp_path / "resonanz.toml", brands)
    with writer_lock(db):
        summary = alerts_flow(config_file=str(config), duckdb_path=str(db), lock_wait_seconds=1)
    assert "being written by another run" in summary["skipped"]
    with closing(open_warehouse(db, read_only=True)) as con:
        assert con.execute("SELECT count(*) FROM alerts").fetchone()[0] == 0


def test_writer_lock_waits_then_gives_up_and_is_released(tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    with writer_lock(db):
        with pytest.raises(WriterBusy, match=r"pid \d+"):
            with writer_lock(db, wait_seconds=0.3):
                pass
    with writer_lock(db, wait_seconds=0):
        pass  # released on exit


def _alert(rule: str, subject: str, severity: str, start: datetime) -> Alert:
    return Alert(alert_id=f"{rule}:{subject}:{start.isoformat()}", rule=rule, subject=subject,
                 severity=severity, window_start=start, window_end=start + timedelta(hours=1),  # type: ignore[arg-type]
                 message=f"{subject} {severity}")


def test_cooldown_suppresses_repeats_unless_more_severe(con, brands: list[Brand]) -> None:  # type: ignore[no-untyped-def]
    from warehouse.stages import save_alerts

    now = datetime(2026, 1, 1, 12, tzinfo=UTC)
    first = _alert("volume_spike", "Apple", "warning", now - timedelta(hours=2))
    save_alerts(con, [first])
    con.execute("UPDATE alerts SET fired_at = ?", [now - timedelta(hours=1)])
    later = _alert("volume_spike", "Apple", "warning", now)
    worse = _alert("volume_spike", "Apple", "critical", now + timedelta(hours=1))
    other = _alert("volume_spike", "Amazon", "info", now)
    assert suppress_repeats(con, [first, later, other], cooldown_minutes=240, now=now) == [other]
    assert suppress_repeats(con, [worse], cooldown_minutes=240, now=now) == [worse]
    assert suppress_repeats(con, [later], cooldown_minutes=30, now=now) == [later]


def test_scheduled_collect_and_retention_flows_take_the_lock_and_report_counts(
    prefect_harness: None, tmp_path: Path
) -> None:
    from flows.scheduled import collect_flow, retention_flow

    db = tmp_path / "w.duckdb"
    collected = collect_flow(duckdb_path=str(db), sources=["feeds_sample"])
    assert collected["feeds_sample"]["pages"] >= 1 and collected["feeds_sample"]["posts"] > 10
    again = collect_flow(duckdb_path=str(db), sources=["feeds_sample"])
    assert again["feeds_sample"].get("posts", 0) == 0  # resumed from the cursor: nothing new
    kept = retention_flow(duckdb_path=str(db), retention_days=365)
    with closing(open_warehouse(db, read_only=True)) as con:
        old = con.execute("SELECT count(*) FROM posts WHERE created_at < now() - INTERVAL 365 DAY").fetchone()[0]
    assert kept == {"older_than_days": 365, "posts_older": old, "deleted": 0}
