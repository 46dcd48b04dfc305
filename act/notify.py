"""Deliver reports and alerts by e-mail (smtplib) and webhook (httpx), with retries and dead letters."""

from __future__ import annotations

import logging
import mimetypes
import smtplib
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from html import escape
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx

from act.alerts import Alert
from resonanz.settings import SmtpSettings

log = logging.getLogger(__name__)

Flavor = Literal["slack", "teams", "json"]
MAX_RETRY_AFTER = 30.0
SLACK_MAX_ALERT_BLOCKS = 45  # Slack rejects messages with more than 50 blocks.


@dataclass(frozen=True)
class Attachment:
    filename: str
    content: bytes
    mime_type: str = "application/octet-stream"


@dataclass(frozen=True)
class DeliveryResult:
    """What happened to one delivery; a failed one is a dead letter the flow can store and replay."""

    channel: str  # "email" or "webhook:<flavor>"
    target: str  # recipients, or the webhook URL without its secret path
    ok: bool
    attempts: int
    status: int | None = None  # last HTTP status or SMTP reply code
    error: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)  # what was to be delivered

    def dead_letter(self) -> dict[str, Any]:
        """Return a JSON-ready record of a failed delivery, with enough to resend it."""
        return {
            "channel": self.channel, "target": self.target, "attempts": self.attempts,
            "status": self.status, "error": self.error, "payload": self.payload,
        }


class _Permanent(Exception):
    """A delivery failure that retrying cannot fix (bad credentials, rejected recipient, 4xx)."""


def format_alerts_text(alerts: Sequence[Alert]) -> str:
    """Render alerts as plain text for a mail body or a log, most severe first."""
    if not alerts:
        return "No alerts fired."
    lines = [f"{len(alerts)} alert(s):", ""]
    for alert in alerts:
        lines.append(f"[{alert.severity.upper()}] {alert.message}")
        lines.append(f"    rule {alert.rule} · subject {alert.subject} · window {_day(alert.window_start)}"
                     f" – {_day(alert.window_end)}")
        post_ids = alert.evidence.get("post_ids") or []
        if post_ids:
            more = f" (+{len(post_ids) - 5} more)" if len(post_ids) > 5 else ""
            lines.append(f"    posts: {', '.join(str(p) for p in post_ids[:5])}{more}")
        lines.append(f"    id {alert.alert_id}")
    return "\n".join(lines)


def format_alerts_html(alerts: Sequence[Alert]) -> str:
    """Render alerts as a small HTML table for a mail body; every value is escaped."""
    if not alerts:
        return "<p>No alerts fired.</p>"
    colours = {"info": "#1f5f8b", "warning": "#b36b00", "critical": "#c0392b"}
    rows = "".join(
        f'<tr><td style="color:{colours[a.severity]};font-weight:bold">{a.severity.upper()}</td>'
        f"<td>{escape(a.message)}</td><td>{escape(a.rule)}</td>"
        f"<td>{_day(a.window_start)} – {_day(a.window_end)}</td></tr>"
        for a in alerts
    )
    return (f"<p>{escape(_headline(alerts))}</p>"
            '<table cellpadding="6" style="border-collapse:collapse;font-family:sans-serif;font-size:14px">'
            "<tr><th align=left>Severity</th><th align=left>What</th><th align=left>Rule</th>"
            f"<th align=left>Window (UTC)</th></tr>{rows}</table>")


def send_email(
    smtp: SmtpSettings,
    subject: str,
    html: str,
    text: str,
    attachments: Sequence[Path | Attachment] = (),
    *,
    retries: int = 3,
    backoff: float = 2.0,
    timeout: float = 30.0,
    tls_context: ssl.SSLContext | None = None,
) -> DeliveryResult:
    """Send a multipart (text + HTML) mail to `smtp.recipients`; retry transient failures."""
    target = ", ".join(smtp.recipients)
    payload = {"subject": subject, "recipients": list(smtp.recipients), "text": text,
               "attachments": [a.name if isinstance(a, Path) else a.filename for a in attachments]}
    if not smtp.host or not smtp.recipients:
        missing = "smtp.host" if not smtp.host else "smtp.recipients"
        return DeliveryResult("email", target, ok=False, attempts=0, payload=payload, error=(
            f"{missing} is not set: configure [smtp] in resonanz.toml or RESONANZ_SMTP__HOST / "
            "RESONANZ_SMTP__RECIPIENTS; nothing was sent"))
    message = build_message(smtp.sender, smtp.recipients, subject, html, text, attachments)
    last_error, last_code, attempt = "", None, 0
    for attempt in range(1, retries + 1):
        try:
            _deliver(smtp, message, timeout, tls_context)
            log.info("mail %r sent to %d recipient(s) via %s:%s", subject, len(smtp.recipients), smtp.host, smtp.port)
            return DeliveryResult("email", target, ok=True, attempts=attempt, status=250, payload=payload)
        except _Permanent as exc:
            last_error, last_code = str(exc), None
            break
        except smtplib.SMTPResponseException as exc:
            last_error, last_code = f"SMTP {exc.smtp_code}: {_text(exc.smtp_error)}", exc.smtp_code
            if exc.smtp_code >= 500:  # 5xx replies are permanent; 4xx are "try again later"
                break
        except (smtplib.SMTPException, OSError) as exc:
            last_error, last_code = f"{type(exc).__name__}: {exc}", None
        log.warning("mail attempt %d/%d to %s:%s failed: %s", attempt, retries, smtp.host, smtp.port, last_error)
        if attempt < retries:
            time.sleep(backoff * 2 ** (attempt - 1))
    return DeliveryResult("email", target, ok=False, attempts=attempt, status=last_code, error=last_error,
                          payload=payload)


def build_message(
    sender: str, recipients: Sequence[str], subject: str, html: str, text: str,
    attachments: Sequence[Path | Attachment] = (),
) -> EmailMessage:
    """Assemble a text/HTML alternative mail with optional file attachments."""
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or "localhost")
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    for item in attachments:
        if isinstance(item, Path):
            mime = mimetypes.guess_type(item.name)[0] or "application/octet-stream"
            item = Attachment(item.name, item.read_bytes(), mime)
        maintype, _, subtype = item.mime_type.partition("/")
        message.add_attachment(item.content, maintype=maintype, subtype=subtype, filename=item.filename)
    return message


def _deliver(smtp: SmtpSettings, message: EmailMessage, timeout: float, tls_context: ssl.SSLContext | None) -> None:
    context = tls_context or ssl.create_default_context()
    # Port 465 speaks TLS from the first byte; every other port upgrades with STARTTLS if asked.
    if smtp.port == 465:
        client: smtplib.SMTP = smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=timeout, context=context)
    else:
        client = smtplib.SMTP(smtp.host, smtp.port, timeout=timeout)
    with client:
        client.ehlo()
        if smtp.starttls and smtp.port != 465:
            if not client.has_extn("starttls"):
                raise _Permanent(f"{smtp.host}:{smtp.port} does not offer STARTTLS; refusing to send in clear "
                                 "text (set smtp.starttls = false only for a trusted local relay)")
            client.starttls(context=context)
            client.ehlo()
        if smtp.username:
            password = smtp.password.get_secret_value() if smtp.password else ""
            try:
                client.login(smtp.username, password)
            except smtplib.SMTPAuthenticationError as exc:
                raise _Permanent(f"SMTP login as {smtp.username!r} refused ({exc.smtp_code}); "
                                 "check RESONANZ_SMTP__USERNAME / RESONANZ_SMTP__PASSWORD") from None
        try:
            client.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            raise _Permanent(f"all recipients refused: {', '.join(exc.recipients)}") from None


def post_webhook(
    url: str,
    alerts: Sequence[Alert],
    flavor: Flavor = "json",
    timeout: float = 10.0,
    *,
    retries: int = 3,
    backoff: float = 1.0,
    transport: httpx.BaseTransport | None = None,
) -> DeliveryResult:
    """POST alerts to a Slack, Teams or plain-JSON webhook; retry 429, 5xx and network errors."""
    builders = {"slack": slack_payload, "teams": teams_payload, "json": json_payload}
    if flavor not in builders:
        raise ValueError(f"unknown webhook flavor {flavor!r}: use one of {', '.join(builders)}")
    channel, target = f"webhook:{flavor}", redact_url(url)
    payload = builders[flavor](alerts)
    if not alerts:
        return DeliveryResult(channel, target, ok=True, attempts=0, payload=payload)
    last_error, last_status, attempt = "", None, 0
    with httpx.Client(timeout=timeout, transport=transport) as client:
        for attempt in range(1, retries + 1):
            wait = backoff * 2 ** (attempt - 1)
            try:
                response = client.post(url, json=payload)
            except httpx.TransportError as exc:
                last_error, last_status = f"{type(exc).__name__}: {exc}", None
            else:
                last_status = response.status_code
                if response.is_success:
                    log.info("posted %d alert(s) to %s (%s)", len(alerts), target, flavor)
                    return DeliveryResult(channel, target, ok=True, attempts=attempt, status=last_status,
                                          payload=payload)
                last_error = f"HTTP {response.status_code}: {response.text[:200]}"
                if response.status_code != 429 and response.status_code < 500:
                    break  # a 4xx other than 429 will fail the same way next time
                wait = max(wait, _retry_after(response))
            log.warning("webhook attempt %d/%d to %s failed: %s", attempt, retries, target, last_error)
            if attempt < retries:
                time.sleep(wait)
    return DeliveryResult(channel, target, ok=False, attempts=attempt, status=last_status, error=last_error,
                          payload=payload)


def redact_url(url: str) -> str:
    """Keep scheme, host and port of a webhook URL; its path and query are often the secret."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}/…" if parts.path not in ("", "/") or parts.query else url


def slack_payload(alerts: Sequence[Alert]) -> dict[str, Any]:
    """Build a Slack incoming-webhook message: a fallback text plus one block per alert."""
    headline = _headline(alerts)
    blocks: list[dict[str, Any]] = [{"type": "header", "text": {"type": "plain_text", "text": headline[:150]}}]
    for alert in alerts[:SLACK_MAX_ALERT_BLOCKS]:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": (
            f"{_SLACK_ICONS[alert.severity]} *{alert.severity.upper()}* · `{alert.rule}` · {alert.subject}\n"
            f"{alert.message}\n_{_day(alert.window_start)} – {_day(alert.window_end)}_")}})
    if len(alerts) > SLACK_MAX_ALERT_BLOCKS:
        blocks.append({"type": "context", "elements": [
            {"type": "mrkdwn", "text": f"+{len(alerts) - SLACK_MAX_ALERT_BLOCKS} more alerts in the report"}]})
    return {"text": headline, "blocks": blocks}


def teams_payload(alerts: Sequence[Alert]) -> dict[str, Any]:
    """Build a Teams workflow-webhook message carrying one Adaptive Card."""
    body: list[dict[str, Any]] = [{"type": "TextBlock", "text": _headline(alerts), "weight": "Bolder",
                                   "size": "Medium", "wrap": True}]
    for alert in alerts:
        body.append({"type": "TextBlock", "wrap": True, "separator": True,
                     "color": _TEAMS_COLOURS[alert.severity],
                     "text": f"**{alert.severity.upper()}** · {alert.rule} · {alert.subject}"})
        body.append({"type": "TextBlock", "wrap": True, "spacing": "None", "text": alert.message})
    card = {"$schema": "http://adaptivecards.io/schemas/adaptive-card.json", "type": "AdaptiveCard",
            "version": "1.4", "body": body}
    return {"type": "message", "attachments": [
        {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card}]}


def json_payload(alerts: Sequence[Alert]) -> dict[str, Any]:
    """Build a plain JSON body: the alerts exactly as stored, evidence included."""
    rows = []
    for alert in alerts:
        row = alert.as_row()
        row["evidence"] = alert.evidence
        rows.append({k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()})
    return {"alerts": rows}


_SLACK_ICONS = {"info": ":information_source:", "warning": ":warning:", "critical": ":rotating_light:"}
_TEAMS_COLOURS = {"info": "Accent", "warning": "Warning", "critical": "Attention"}


def _headline(alerts: Sequence[Alert]) -> str:
    counts = {s: sum(a.severity == s for a in alerts) for s in ("critical", "warning", "info")}
    parts = [f"{n} {s}" for s, n in counts.items() if n]
    return f"Resonanz: {len(alerts)} alert(s)" + (f" ({', '.join(parts)})" if parts else "")


def _retry_after(response: httpx.Response) -> float:
    value = response.headers.get("retry-after", "")
    try:
        return min(max(float(value), 0.0), MAX_RETRY_AFTER)
    except ValueError:
        return 0.0  # an HTTP-date or garbage: fall back to our own backoff


def _day(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M")


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
