"""Evaluate alert rules over a time window of the warehouse; each firing maps onto one `alerts` row."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import duckdb

from act.facts import BRAND_FACTS_SQL, POST_FACTS_SQL, Window, current_ranking, resolve_window
from resonanz.settings import AlertSettings, Brand

Severity = Literal["info", "warning", "critical"]
SEVERITY_ORDER: dict[str, int] = {"info": 0, "warning": 1, "critical": 2}
DEFAULT_WINDOW_DAYS = 7
TOP_INFLUENCERS = 10
MAX_EVIDENCE_POSTS = 50
UNTRACKED = "untracked"


@dataclass(frozen=True)
class Alert:
    """One firing of a rule for a subject in a window; the fields are the `alerts` table's columns."""

    alert_id: str
    rule: str
    subject: str
    severity: Severity
    window_start: datetime
    window_end: datetime
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)
    fired_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def as_row(self) -> dict[str, Any]:
        """Return the alert as an `alerts` row, evidence serialised to JSON text."""
        row = asdict(self)
        row["evidence"] = json.dumps(self.evidence, ensure_ascii=False, sort_keys=True, default=str)
        return row


def alert_id(rule: str, subject: str, window: Window) -> str:
    """Derive a stable id, so re-evaluating the same window de-duplicates on the primary key."""
    key = "\x1f".join([rule, subject, window.start.isoformat(), window.end.isoformat()])
    return f"{rule}:{hashlib.sha256(key.encode()).hexdigest()[:24]}"


def evaluate_alerts(
    con: duckdb.DuckDBPyConnection,
    settings: AlertSettings,
    brands: list[Brand],
    window_start: datetime | None = None,
    window_end: datetime | None = None,
) -> list[Alert]:
    """Run every rule over the window (default: the last 7 days before the newest post)."""
    window = resolve_window(con, window_start, window_end, last_days=DEFAULT_WINDOW_DAYS)
    if window is None:
        return []
    alerts = [
        *negative_share_alerts(con, settings, brands, window),
        *crisis_term_alerts(con, settings, brands, window),
        *influencer_negative_alerts(con, brands, window),
    ]
    return sorted(alerts, key=lambda a: (-SEVERITY_ORDER[a.severity], a.rule, a.subject))


def negative_share_alerts(
    con: duckdb.DuckDBPyConnection, settings: AlertSettings, brands: list[Brand], window: Window
) -> list[Alert]:
    """Fire for an own brand or product whose rated mentions are negative more often than the threshold."""
    own = [b.name for b in brands if b.kind != "competitor"]
    rows = con.execute(
        f"""
        SELECT brand,
               count(*) FILTER (brand_sentiment IN ('negative', 'neutral', 'positive')) AS rated,
               count(*) FILTER (brand_sentiment = 'negative') AS negative,
               list(post_id ORDER BY sentiment_score DESC NULLS LAST, post_id)
                   FILTER (brand_sentiment = 'negative') AS negative_posts,
               any_value(source) FILTER (brand_sentiment = 'negative') AS source
        FROM ({BRAND_FACTS_SQL})
        GROUP BY brand
        ORDER BY brand
        """,
        [window.start, window.end, own],
    ).fetchall()
    threshold = settings.negative_share_threshold
    alerts = []
    for brand, rated, negative, negative_posts, _ in rows:
        share = negative / rated if rated else 0.0
        if rated < settings.min_posts or share <= threshold:
            continue
        # How far past the threshold, as a fraction of the headroom left above it.
        excess = (share - threshold) / (1 - threshold) if threshold < 1 else 1.0
        severity: Severity = "critical" if excess >= 0.4 else "warning" if excess >= 0.2 else "info"
        alerts.append(Alert(
            alert_id=alert_id("negative_share", brand, window),
            rule="negative_share",
            subject=brand,
            severity=severity,
            window_start=window.start,
            window_end=window.end,
            message=(f"{brand}: {share:.0%} of {rated} rated posts are negative "
                     f"(threshold {threshold:.0%})"),
            evidence={
                "rated_posts": rated, "negative_posts": negative, "negative_share": round(share, 4),
                "threshold": threshold, "min_posts": settings.min_posts,
                "post_ids": list(negative_posts or [])[:MAX_EVIDENCE_POSTS],
            },
        ))
    return alerts


def crisis_pattern(term: str) -> re.Pattern[str]:
    """Match a term as a whole word (or phrase), ignoring case, in English and German text."""
    # Lookarounds instead of \b: \b misfires when a term starts or ends with a non-word
    # character ("#boycott") and Python's \w already treats ü, ß as word characters.
    return re.compile(rf"(?<!\w){re.escape(term.strip())}(?!\w)", re.IGNORECASE)


def crisis_term_alerts(
    con: duckdb.DuckDBPyConnection, settings: AlertSettings, brands: list[Brand], window: Window
) -> list[Alert]:
    """Fire once per tracked name whose posts in the window use a crisis term."""
    terms = [t for t in settings.crisis_terms if t.strip()]
    if not terms:
        return []
    patterns = {term: crisis_pattern(term) for term in terms}
    # Substring pre-filter in SQL keeps the Python regex pass to the few candidate posts.
    candidates = con.execute(
        f"""
        SELECT source, post_id, author_id, text FROM ({POST_FACTS_SQL})
        WHERE len(list_filter(?, lambda t: contains(lower(text), t))) > 0
        ORDER BY created_at DESC, post_id
        """,
        [window.start, window.end, [t.strip().lower() for t in terms]],
    ).fetchall()
    hits: dict[tuple[str, str], list[str]] = {}
    for source, post_id, _, text in candidates:
        matched = [term for term, pattern in patterns.items() if pattern.search(text)]
        if matched:
            hits[(source, post_id)] = matched
    if not hits:
        return []
    kinds = {b.name: b.kind for b in brands}
    mentions = con.execute(
        "SELECT DISTINCT source, post_id, brand FROM brand_mentions"
        " WHERE list_contains(?, brand) AND list_contains(?, post_id)",
        [list(kinds), sorted({post_id for _, post_id in hits})],
    ).fetchall()
    by_subject: dict[str, list[tuple[str, str]]] = {}
    for source, post_id, brand in mentions:
        if (source, post_id) in hits:
            by_subject.setdefault(brand, []).append((source, post_id))
    attributed = {key for keys in by_subject.values() for key in keys}
    untracked = [key for key in hits if key not in attributed]
    if untracked:
        by_subject[UNTRACKED] = untracked
    ranked = {(a.source, a.account_id) for a in current_ranking(con, TOP_INFLUENCERS)}
    authors = {(r[0], r[1]): r[2] for r in candidates}
    alerts = []
    for subject, keys in sorted(by_subject.items()):
        keys = sorted(set(keys))
        term_counts: dict[str, int] = {}
        for key in keys:
            for term in hits[key]:
                term_counts[term] = term_counts.get(term, 0) + 1
        by_influencer = sorted(k[1] for k in keys if (k[0], authors[k]) in ranked)
        severity: Severity = "critical" if len(keys) >= 5 else "warning" if len(keys) >= 2 or by_influencer else "info"
        # Brand teams act on their own names; a competitor's or an untracked crisis is context.
        if subject == UNTRACKED or kinds.get(subject) == "competitor":
            severity = "info"
        terms_text = ", ".join(f"{t} ({n})" for t, n in sorted(term_counts.items(), key=lambda kv: -kv[1]))
        alerts.append(Alert(
            alert_id=alert_id("crisis_terms", subject, window),
            rule="crisis_terms",
            subject=subject,
            severity=severity,
            window_start=window.start,
            window_end=window.end,
            message=f"{subject}: {len(keys)} post(s) use crisis terms: {terms_text}",
            evidence={
                "posts": len(keys), "terms": term_counts, "post_ids": [k[1] for k in keys][:MAX_EVIDENCE_POSTS],
                "posts_by_top_influencers": by_influencer,
            },
        ))
    return alerts


def influencer_negative_alerts(con: duckdb.DuckDBPyConnection, brands: list[Brand], window: Window) -> list[Alert]:
    """Fire for each top-10 account that wrote negatively about an own brand or product."""
    ranking = current_ranking(con, TOP_INFLUENCERS)
    if not ranking:
        return []
    own = [b.name for b in brands if b.kind != "competitor"]
    rows = con.execute(
        f"""
        SELECT source, author_id, post_id, list(DISTINCT brand ORDER BY brand), any_value(sentiment_score)
        FROM ({BRAND_FACTS_SQL})
        WHERE brand_sentiment = 'negative' AND list_contains(?, author_id)
        GROUP BY source, author_id, post_id
        ORDER BY post_id
        """,
        [window.start, window.end, own, [a.account_id for a in ranking]],
    ).fetchall()
    alerts = []
    for account in ranking:
        posts = [r for r in rows if (r[0], r[1]) == (account.source, account.account_id)]
        if not posts:
            continue
        named = sorted({brand for r in posts for brand in r[3]})
        severity: Severity = "critical" if account.rank <= 3 else "warning" if account.rank <= 6 else "info"
        subject = f"{account.source}:@{account.handle}"
        alerts.append(Alert(
            alert_id=alert_id("influencer_negative", subject, window),
            rule="influencer_negative",
            subject=subject,
            severity=severity,
            window_start=window.start,
            window_end=window.end,
            message=(f"Top-{TOP_INFLUENCERS} influencer @{account.handle} (rank {account.rank}) "
                     f"posted negatively about {', '.join(named)} ({len(posts)} post(s))"),
            evidence={
                "account_id": account.account_id, "rank": account.rank, "score": account.score,
                "ranking_as_of": account.as_of.isoformat(), "brands": named,
                "post_ids": [r[2] for r in posts][:MAX_EVIDENCE_POSTS],
            },
        ))
    return alerts
