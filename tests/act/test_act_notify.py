"""Mail against a real SMTP server and webhooks against a real HTTP server, both on 127.0.0.1."""

from __future__ import annotations

import email
import json
import logging
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from email.message import Message
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import duckdb
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from pydantic import SecretStr

from act.alerts import Alert, evaluate_alerts
from act.notify import Attachment, format_alerts_html, format_alerts_text, post_webhook, send_email
from resonanz.settings import AlertSettings, Brand, SmtpSettings

SECRET = "s3cret-Passw0rd-never-logged"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def alerts(con: duckdb.DuckDBPyConnection, brands: list[Brand]) -> list[Alert]:
    settings = AlertSettings(negative_share_threshold=0.3, min_posts=5, crisis_terms=["outage", "hacked"])
    found = evaluate_alerts(con, settings, brands)
    assert len(found) >= 4
    return found


# ---------------------------------------------------------------- e-mail


class _Inbox:
    """An aiosmtpd handler that keeps every delivered message."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], Message]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd hook)
        parsed = email.message_from_bytes(envelope.content, policy=default_policy)
        self.messages.append((list(envelope.rcpt_tos), parsed))
        return "250 Message accepted"


@pytest.fixture
def smtp_server() -> Iterator[tuple[_Inbox, int]]:
    inbox, port = _Inbox(), _free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()


def test_mail_arrives_with_subject_recipients_html_and_attachment(
    smtp_server: tuple[_Inbox, int], alerts: list[Alert], tmp_path: Path
) -> None:
    inbox, port = smtp_server
    report = tmp_path / "report.html"
    report.write_text("<html><body><h1>Report</h1></body></html>", encoding="utf-8")
    smtp = SmtpSettings(host="127.0.0.1", port=port, starttls=False, sender="resonanz@example.org",
                        recipients=["brand-team@example.org", "marketing@example.org"])
    csv_file = Attachment("a.csv", b"x,y\n1,2\n", "text/csv")
    result = send_email(smtp, "Resonanz: 5 alerts", "<h1>Alerts</h1><p>Deutsche Bahn &amp; Co</p>",
                        format_alerts_text(alerts), attachments=[report, csv_file])
    assert result.ok and result.attempts == 1 and result.status == 250
    assert len(inbox.messages) == 1
    rcpts, message = inbox.messages[0]
    assert rcpts == ["brand-team@example.org", "marketing@example.org"]
    assert message["Subject"] == "Resonanz: 5 alerts" and message["From"] == "resonanz@example.org"
    assert message.get_body(("html",)).get_content().startswith("<h1>Alerts</h1>")
    assert "Top-10 influencer @115855" in message.get_body(("plain",)).get_content()
    names = {part.get_filename(): part.get_content() for part in message.iter_attachments()}
    assert names["a.csv"] == "x,y\n1,2\n" and "<h1>Report</h1>" in names["report.html"]


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    try:
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
             "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
            check=True, capture_output=True, timeout=30,
        )
    except (FileNotFoundError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"openssl is needed to make a throw-away certificate: {exc}")
    return cert, key


def test_mail_uses_starttls_and_login_without_logging_the_password(
    tls_files: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    cert, key = tls_files
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    logins: list[tuple[bytes, bytes]] = []

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        logins.append((auth_data.login, auth_data.password))
        return AuthResult(success=auth_data.password == SECRET.encode(), handled=False)

    inbox, port = _Inbox(), _free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, tls_context=server_context,
                            require_starttls=True, authenticator=authenticator, auth_require_tls=True)
    controller.start()
    try:
        client_context = ssl.create_default_context(cafile=str(cert))
        smtp = SmtpSettings(host="127.0.0.1", port=port, starttls=True, username="resonanz",
                            password=SecretStr(SECRET), recipients=["team@example.org"])
        with caplog.at_level(logging.DEBUG):
            ok = send_email(smtp, "TLS", "<p>hi</p>", "hi", tls_context=client_context, backoff=0, timeout=5)
            wrong = smtp.model_copy(update={"password": SecretStr("wrong-" + SECRET)})
            refused = send_email(wrong, "TLS", "<p>hi</p>", "hi", tls_context=client_context,
                                 retries=3, backoff=0, timeout=5)
    finally:
        controller.stop()
    assert ok.ok and len(inbox.messages) == 1 and logins[0] == (b"resonanz", SECRET.encode())
    # Bad credentials are permanent: one attempt, a clear message, a dead letter, no secret anywhere.
    assert not refused.ok and refused.attempts == 1 and "RESONANZ_SMTP__PASSWORD" in (refused.error or "")
    assert SECRET not in caplog.text and SECRET not in json.dumps(refused.dead_letter())
    assert SECRET not in repr(smtp)


def test_mail_refuses_clear_text_when_starttls_is_missing(smtp_server: tuple[_Inbox, int]) -> None:
    inbox, port = smtp_server
    smtp = SmtpSettings(host="127.0.0.1", port=port, starttls=True, recipients=["team@example.org"])
    result = send_email(smtp, "s", "<p>h</p>", "t", backoff=0)
    assert not result.ok and result.attempts == 1 and "does not offer STARTTLS" in (result.error or "")
    assert inbox.messages == []


def test_mail_retries_then_returns_a_dead_letter_when_the_server_is_down() -> None:
    smtp = SmtpSettings(host="127.0.0.1", port=_free_port(), starttls=False, recipients=["team@example.org"])
    result = send_email(smtp, "Alerts", "<p>h</p>", "body text", retries=2, backoff=0, timeout=2)
    assert not result.ok and result.attempts == 2
    letter = result.dead_letter()
    assert letter["channel"] == "email" and letter["payload"]["text"] == "body text"
    assert "ConnectionRefusedError" in letter["error"]


def test_mail_without_host_says_what_to_configure() -> None:
    result = send_email(SmtpSettings(recipients=["team@example.org"]), "s", "<p>h</p>", "t")
    assert not result.ok and result.attempts == 0 and "RESONANZ_SMTP__HOST" in (result.error or "")


# ---------------------------------------------------------------- webhooks


class _Receiver:
    """A 127.0.0.1 HTTP server answering POSTs with scripted statuses and keeping the bodies."""

    def __init__(self, statuses: list[int], headers: dict[str, str] | None = None) -> None:
        self.statuses, self.headers, self.bodies = statuses, headers or {}, []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server hook)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.bodies.append((self.path, self.headers.get("Content-Type"), json.loads(body)))
                status = receiver.statuses[min(len(receiver.bodies), len(receiver.statuses)) - 1]
                self.send_response(status)
                for name, value in receiver.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(b"ok" if status < 400 else b"receiver says no")

            def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/T000/B000/secret-token"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> _Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_slack_payload_shape(alerts: list[Alert]) -> None:
    with _Receiver([200]) as receiver:
        result = post_webhook(receiver.url, alerts, "slack", backoff=0)
    assert result.ok and result.attempts == 1 and result.status == 200
    path, content_type, body = receiver.bodies[0]
    assert path == "/hooks/T000/B000/secret-token" and content_type == "application/json"
    assert body["text"].startswith(f"Resonanz: {len(alerts)} alert(s)")
    assert body["blocks"][0]["type"] == "header"
    sections = [b for b in body["blocks"] if b["type"] == "section"]
    assert len(sections) == len(alerts)
    assert all(b["text"]["type"] == "mrkdwn" for b in sections)
    assert alerts[0].message in sections[0]["text"]["text"]
    assert "secret-token" not in result.target  # the URL's path is the credential


def test_teams_payload_shape(alerts: list[Alert]) -> None:
    with _Receiver([202]) as receiver:
        result = post_webhook(receiver.url, alerts, "teams", backoff=0)
    assert result.ok and result.status == 202
    body = receiver.bodies[0][2]
    assert body["type"] == "message"
    attachment = body["attachments"][0]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.4"
    texts = [block["text"] for block in card["body"]]
    assert all(alert.message in texts for alert in alerts)


def test_json_payload_carries_the_stored_rows(alerts: list[Alert]) -> None:
    with _Receiver([200]) as receiver:
        assert post_webhook(receiver.url, alerts, "json", backoff=0).ok
    rows = receiver.bodies[0][2]["alerts"]
    assert [r["alert_id"] for r in rows] == [a.alert_id for a in alerts]
    assert rows[0]["evidence"] == alerts[0].evidence


def test_webhook_retries_5xx_then_succeeds(alerts: list[Alert]) -> None:
    with _Receiver([500, 500, 200]) as receiver:
        result = post_webhook(receiver.url, alerts, "slack", retries=3, backoff=0, timeout=5)
    assert result.ok and result.attempts == 3 and len(receiver.bodies) == 3
    assert receiver.bodies[0][2] == receiver.bodies[2][2]  # the same message each time


def test_webhook_honours_retry_after_on_429(alerts: list[Alert]) -> None:
    with _Receiver([429, 200], headers={"Retry-After": "0"}) as receiver:
        result = post_webhook(receiver.url, alerts, "json", backoff=0)
    assert result.ok and result.attempts == 2


def test_webhook_that_always_fails_yields_a_dead_letter(alerts: list[Alert]) -> None:
    with _Receiver([503]) as receiver:
        result = post_webhook(receiver.url, alerts, "teams", retries=3, backoff=0, timeout=5)
    assert not result.ok and result.attempts == 3 and len(receiver.bodies) == 3
    letter = result.dead_letter()
    assert letter["status"] == 503 and letter["error"].startswith("HTTP 503")
    assert letter["payload"]["type"] == "message" and "secret-token" not in json.dumps(letter)


def test_webhook_client_error_is_not_retried(alerts: list[Alert]) -> None:
    with _Receiver([400]) as receiver:
        result = post_webhook(receiver.url, alerts, "slack", retries=3, backoff=0, timeout=5)
    assert not result.ok and result.attempts == 1 and result.status == 400


def test_webhook_unreachable_and_bad_flavor(alerts: list[Alert]) -> None:
    result = post_webhook(f"http://127.0.0.1:{_free_port()}/hook", alerts, "json", retries=2, backoff=0, timeout=2)
    assert not result.ok and result.attempts == 2 and result.status is None and "ConnectError" in (result.error or "")
    with pytest.raises(ValueError, match="slack, teams, json"):
        post_webhook("http://127.0.0.1/hook", alerts, "discord")  # type: ignore[arg-type]


def test_nothing_to_send_is_a_success_without_a_request() -> None:
    with _Receiver([500]) as receiver:
        result = post_webhook(receiver.url, [], "slack")
    assert result.ok and result.attempts == 0 and receiver.bodies == []
    assert format_alerts_text([]) == "No alerts fired."


def test_alert_text_lists_severity_message_and_posts(alerts: list[Alert]) -> None:
    text = format_alerts_text(alerts)
    assert text.startswith(f"{len(alerts)} alert(s):")
    first = text.splitlines()[2]
    assert first == f"[{alerts[0].severity.upper()}] {alerts[0].message}"
    assert all(a.alert_id in text for a in alerts)


def test_alert_html_escapes_and_lists_every_alert(alerts: list[Alert]) -> None:
    html = format_alerts_html(alerts)
    assert html.count("<tr>") == len(alerts) + 1
    assert "CRITICAL" in html and "@115855" in html
    tricky = Alert("id", "crisis_terms", "<b>x</b>", "info", alerts[0].window_start, alerts[0].window_end,
                   "<script>alert(1)</script>", {})
    assert "<script>" not in format_alerts_html([tricky]) and "&lt;script&gt;" in format_alerts_html([tricky])
