"""Evaluate alert rules over a time window of the warehouse; each firing maps onto one `alerts` row."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from collections import defaultdict
from collections.abc import Iterable
from typing import Any, Literal

import duckdb

from act.facts import (
    BRAND_FACTS_SQL,
    POST_FACTS_SQL,
    RankedAccount,
    Window,
    as_utc,
    current_ranking,
    rising_influencers,
    resolve_window,
)
from act.spikes import BUCKET, hourly_counts, score_hours, spikes
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

    @classmethod
    def fire(cls, rule: str, subject: str, window: Window, severity: Severity, *, message: str,
             evidence: dict[str, Any]) -> Alert:
        """Return the firing of `rule` for `subject` in `window`, with its stable id."""
        return cls(alert_id(rule, subject, window), rule, subject, severity, window.start, window.end, message, evidence)

    def as_row(self) -> dict[str, Any]:
        """Return the alert as an `alerts` row, evidence serialised to JSON text."""
        row = asdict(self)
        row["evidence"] = json.dumps(self.evidence, ensure_ascii=False, sort_keys=True, default=str)
        return row


def alert_id(rule: str, subject: str, window: Window) -> str:
    """Derive a stable id, so re-evaluating the same window de-duplicates on the primary key."""
    key = "\x1f".join([rule, subject, window.start.isoformat(), window.end.isoformat()])
    return f"{rule}:{hashlib.sha256(key.encode()).hexdigest()[:24]}"


def evaluation_window(con: duckdb.DuckDBPyConnection, period: str) -> tuple[datetime | None, datetime | None]:
    """Turn an alert period into (start, end) for `evaluate_alerts`.

    "last-week" is the rules' own default (the 7 days up to the newest post). "all" spans every
    collected post: for an archive or a historical sample, where only the newest week would
    show almost nothing.
    """
    if period == "last-week":
        return None, None
    if period != "all":
        raise ValueError(f"unknown alert period {period!r}: use 'last-week' or 'all'")
    first, last = con.execute("SELECT min(created_at), max(created_at) FROM posts").fetchone()  # type: ignore[misc]
    if first is None:
        return None, None
    return first, last + timedelta(seconds=1)


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
        *volume_spike_alerts(con, settings, brands, window),
        *negative_surge_alerts(con, settings, brands, window),
        *influencer_mention_alerts(con, brands, window),
        *rising_influencer_alerts(con),
        *customer_negative_alerts(con, settings, window),
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
        alerts.append(Alert.fire(
            "negative_share", brand, window, severity,
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
        alerts.append(Alert.fire(
            "crisis_terms", subject, window, severity,
            message=f"{subject}: {len(keys)} post(s) use crisis terms: {terms_text}",
            evidence={
                "posts": len(keys), "terms": term_counts, "post_ids": [k[1] for k in keys][:MAX_EVIDENCE_POSTS],
                "posts_by_top_influencers": by_influencer,
            },
        ))
    return alerts


def _top_accounts_with_brand_posts(
    con: duckdb.DuckDBPyConnection, brands: list[Brand], window: Window, negative: bool
) -> tuple[list[RankedAccount], dict[tuple[str, str], list[tuple[Any, ...]]]]:
    """Return the current top accounts and, per (source, account), their posts in `window` about
    an own brand: the negative ones, or (negative=False) all the others.

    Rows are (source, author_id, post_id, brands), ordered by post id.
    """
    ranking = current_ranking(con, TOP_INFLUENCERS)
    if not ranking:
        return [], {}
    own = [b.name for b in brands if b.kind != "competitor"]
    rows = con.execute(
        f"""
        SELECT source, author_id, post_id, list(DISTINCT brand ORDER BY brand)
        FROM ({BRAND_FACTS_SQL})
        WHERE (coalesce(brand_sentiment, '') = 'negative') = ? AND list_contains(?, author_id)
        GROUP BY source, author_id, post_id
        ORDER BY post_id
        """,
        [window.start, window.end, own, negative, [a.account_id for a in ranking]],
    ).fetchall()
    by_account: dict[tuple[str, str], list[tuple[Any, ...]]] = defaultdict(list)
    for row in rows:
        by_account[(row[0], row[1])].append(row)
    return ranking, by_account


def influencer_negative_alerts(con: duckdb.DuckDBPyConnection, brands: list[Brand], window: Window) -> list[Alert]:
    """Fire for each top-10 account that wrote negatively about an own brand or product."""
    ranking, posts_of = _top_accounts_with_brand_posts(con, brands, window, negative=True)
    alerts = []
    for account in ranking:
        posts = posts_of.get((account.source, account.account_id))
        if not posts:
            continue
        named = sorted({brand for r in posts for brand in r[3]})
        severity: Severity = "critical" if account.rank <= 3 else "warning" if account.rank <= 6 else "info"
        subject = f"{account.source}:@{account.handle}"
        alerts.append(Alert.fire(
            "influencer_negative", subject, window, severity,
            message=(f"Top-{TOP_INFLUENCERS} influencer @{account.handle} (rank {account.rank}) "
                     f"posted negatively about {', '.join(named)} ({len(posts)} post(s))"),
            evidence={
                "account_id": account.account_id, "rank": account.rank, "score": account.score,
                "ranking_as_of": account.as_of.isoformat(), "brands": named,
                "post_ids": [r[2] for r in posts][:MAX_EVIDENCE_POSTS],
            },
        ))
    return alerts


# ---- rules added for scheduled alerting ------------------------------------------------------

SPIKE_RECENT_HOURS = 3  # the flow runs every 15 minutes; three hours covers a missed run or two
SURGE_HOURS = 24
ALL_POSTS = "all posts"


def evidence_id(rule: str, subject: str, keys: Iterable[str]) -> str:
    """Derive an id from the evidence itself, so the same posts never fire the same rule twice."""
    key = "\x1f".join([rule, subject, *sorted(keys)])
    return f"{rule}:{hashlib.sha256(key.encode()).hexdigest()[:24]}"


def _families(brands: list[Brand]) -> dict[str, str]:
    names = {b.name for b in brands}
    return {b.name: (b.owner if b.kind == "product" and b.owner in names else b.name) for b in brands}


def volume_spike_alerts(
    con: duckdb.DuckDBPyConnection, settings: AlertSettings, brands: list[Brand], window: Window
) -> list[Alert]:
    """Fire for an hour near the window's end whose volume beats its seasonal baseline (act/spikes.py)."""
    history_start = window.end - timedelta(days=settings.spike_history_days)
    own = [b.name for b in brands if b.kind != "competitor"]
    family = _families(brands)
    rows = con.execute(
        f"""
        SELECT f.source, f.post_id, f.created_at, f.engagement, list(DISTINCT m.brand) FILTER (m.brand IS NOT NULL)
        FROM ({POST_FACTS_SQL}) f
        LEFT JOIN brand_mentions m ON m.source = f.source AND m.post_id = f.post_id AND list_contains(?, m.brand)
        GROUP BY f.source, f.post_id, f.created_at, f.engagement
        """,
        [history_start, window.end, own],
    ).fetchall()
    series: dict[str, list[tuple[str, str, datetime, int]]] = {ALL_POSTS: []}
    for source, post_id, created_at, engagement, named in rows:
        post = (source, post_id, as_utc(created_at), int(engagement))
        series[ALL_POSTS].append(post)
        for subject in {family[b] for b in named or []}:
            series.setdefault(subject, []).append(post)
    alerts = []
    for subject, posts in sorted(series.items()):
        hours, counts = hourly_counts([p[2] for p in posts], history_start, window.end)
        recent = score_hours(hours, counts, settings.spike_history_days, only_last=SPIKE_RECENT_HOURS)
        fired = spikes(recent, settings.spike_z_threshold, settings.spike_min_posts)
        if not fired:
            continue
        top = max(fired, key=lambda s: s.z)
        hour = Window(top.start, top.start + BUCKET)
        in_hour = sorted((p for p in posts if hour.start <= p[2] < hour.end), key=lambda p: (-p[3], p[1]))
        ratio = top.z / settings.spike_z_threshold
        severity: Severity = "critical" if ratio >= 2 else "warning" if ratio >= 1.25 else "info"
        if subject == ALL_POSTS:
            severity = "info" if severity != "critical" else "warning"
        alerts.append(Alert.fire(
            "volume_spike", subject, hour, severity,
            message=(f"{subject}: {top.count} posts in the hour from {top.start:%Y-%m-%d %H:00} UTC, "
                     f"usually {top.baseline_median:g} (robust z {top.z:.1f})"),
            evidence={
                "count": top.count, "baseline_median": top.baseline_median,
                "baseline_scale": round(top.baseline_scale, 3), "baseline_hours": top.history,
                "baseline": top.baseline, "z": round(top.z, 2), "z_threshold": settings.spike_z_threshold,
                "spiking_hours": len(fired), "post_ids": [p[1] for p in in_hour][:MAX_EVIDENCE_POSTS],
            },
        ))
    return alerts


def negative_surge_alerts(
    con: duckdb.DuckDBPyConnection, settings: AlertSettings, brands: list[Brand], window: Window
) -> list[Alert]:
    """Fire when a brand's negative share in the last 24 hours jumps above the rest of the window."""
    recent_start = window.end - timedelta(hours=SURGE_HOURS)
    if recent_start <= window.start:
        return []
    own = [b.name for b in brands if b.kind != "competitor"]
    family = _families(brands)
    rows = con.execute(
        f"""
        SELECT brand, post_id, created_at >= ? AS recent, brand_sentiment, sentiment_score
        FROM ({BRAND_FACTS_SQL})
        WHERE brand_sentiment IN ('negative', 'neutral', 'positive')
        """,
        [recent_start, window.start, window.end, own],
    ).fetchall()
    by_family: dict[str, dict[str, dict[str, str]]] = {}
    for brand, post_id, recent, sentiment, _ in rows:
        part = "recent" if recent else "before"
        by_family.setdefault(family[brand], {"recent": {}, "before": {}})[part][post_id] = sentiment
    alerts = []
    for subject, parts in sorted(by_family.items()):
        now, before = parts["recent"], parts["before"]
        n_now, n_before = len(now), len(before)
        if n_now < settings.spike_min_posts or n_before < 2 * settings.spike_min_posts:
            continue
        neg_now = [p for p, s in now.items() if s == "negative"]
        share_now = len(neg_now) / n_now
        share_before = sum(s == "negative" for s in before.values()) / n_before
        increase = share_now - share_before
        # Two-proportion z-test: is the recent share more than noise around the earlier one?
        pooled = (len(neg_now) + share_before * n_before) / (n_now + n_before)
        spread = (pooled * (1 - pooled) * (1 / n_now + 1 / n_before)) ** 0.5
        z = increase / spread if spread else 0.0
        if increase < settings.surge_min_increase or z < 2.0:
            continue
        severity: Severity = "critical" if increase >= 0.3 else "warning" if increase >= 0.2 else "info"
        recent = Window(recent_start, window.end)
        alerts.append(Alert.fire(
            "negative_surge", subject, recent, severity,
            message=(f"{subject}: negative share rose to {share_now:.0%} of {n_now} rated posts in the last "
                     f"{SURGE_HOURS} h, from {share_before:.0%} of {n_before} before (z {z:.1f})"),
            evidence={
                "recent_rated": n_now, "recent_negative": len(neg_now), "recent_share": round(share_now, 4),
                "before_rated": n_before, "before_share": round(share_before, 4), "z": round(z, 2),
                "post_ids": sorted(neg_now)[:MAX_EVIDENCE_POSTS],
            },
        ))
    return alerts


def influencer_mention_alerts(con: duckdb.DuckDBPyConnection, brands: list[Brand], window: Window) -> list[Alert]:
    """Fire when a top-10 account mentions an own brand without being negative (negative has its own rule)."""
    ranking, posts_of = _top_accounts_with_brand_posts(con, brands, window, negative=False)
    alerts = []
    for account in ranking:
        # Brand accounts mention their own brand all day; that is not news for the brand team.
        posts = posts_of.get((account.source, account.account_id))
        if not posts or _is_brand_account(account, brands):
            continue
        named = sorted({b for r in posts for b in r[3]})
        subject = f"{account.source}:@{account.handle}"
        post_ids = [r[2] for r in posts]
        alerts.append(Alert(
            alert_id=evidence_id("influencer_mention", subject, post_ids),
            rule="influencer_mention",
            subject=subject,
            severity="warning" if account.rank <= 3 else "info",
            window_start=window.start,
            window_end=window.end,
            message=(f"Top-{TOP_INFLUENCERS} influencer @{account.handle} (rank {account.rank}) mentioned "
                     f"{', '.join(named)} ({len(posts)} post(s))"),
            evidence={"account_id": account.account_id, "rank": account.rank, "brands": named,
                      "explanation": account.explanation, "post_ids": post_ids[:MAX_EVIDENCE_POSTS]},
        ))
    return alerts


def _is_brand_account(account: RankedAccount, brands: list[Brand]) -> bool:
    handles = {h.lower() for b in brands for h in b.handles}
    return account.handle.lower() in handles or account.account_id.lower() in handles


def rising_influencer_alerts(con: duckdb.DuckDBPyConnection) -> list[Alert]:
    """Fire for an account that rose into the top ranks (graph room's rising_influencers, or two rankings)."""
    alerts = []
    for row in rising_influencers(con, TOP_INFLUENCERS):
        subject = f"{row.source}:@{row.handle}"
        alerts.append(Alert(
            alert_id=evidence_id("rising_influencer", subject, [row.as_of.isoformat()]),
            rule="rising_influencer",
            subject=subject,
            severity="warning" if row.rank <= 3 else "info",
            window_start=row.as_of,
            window_end=row.as_of,
            message=f"Rising influencer @{row.handle}: now rank {row.rank} ({row.change})",
            evidence={"account_id": row.account_id, "rank": row.rank, "change": row.change,
                      "explanation": row.explanation, "post_ids": []},
        ))
    return alerts


def customer_negative_alerts(con: duckdb.DuckDBPyConnection, settings: AlertSettings, window: Window) -> list[Alert]:
    """Fire when a linked high-value customer posts negatively after being positive or quiet before."""
    rows = con.execute(
        f"""
        WITH facts AS ({POST_FACTS_SQL.replace("WHERE p.created_at BETWEEN ? AND ?", "WHERE p.created_at <= ?")}),
        linked AS (
            SELECT k.source, k.account_id, k.customer_id, v.abc_class, v.clv_12m, v.monetary
            FROM account_customer_links k
            JOIN customer_value v ON v.customer_id = k.customer_id
            WHERE k.status IN ('auto', 'confirmed') AND list_contains(?, v.abc_class)
        )
        SELECT l.customer_id, any_value(l.abc_class), any_value(l.clv_12m), any_value(l.monetary),
               any_value(l.source || ':' || l.account_id),
               list(f.post_id ORDER BY f.post_id) FILTER (f.created_at >= ? AND f.sentiment = 'negative'),
               count(*) FILTER (f.created_at < ? AND f.sentiment IN ('negative', 'neutral', 'positive')),
               count(*) FILTER (f.created_at < ? AND f.sentiment = 'negative')
        FROM linked l JOIN facts f ON f.source = l.source AND f.author_id = l.account_id
        GROUP BY l.customer_id
        ORDER BY l.customer_id
        """,
        [window.end, settings.high_value_classes, window.start, window.start, window.start],
    ).fetchall()
    alerts = []
    for customer_id, abc, clv, monetary, account, negative_posts, rated_before, negative_before in rows:
        if not negative_posts:
            continue
        # "Turning" negative: before the window the customer was rarely negative (or silent).
        if rated_before and negative_before / rated_before >= 0.5:
            continue
        subject = f"customer {customer_id}"
        alerts.append(Alert(
            alert_id=evidence_id("customer_negative", subject, negative_posts),
            rule="customer_negative",
            subject=subject,
            severity="critical" if len(negative_posts) >= 2 else "warning",
            window_start=window.start,
            window_end=window.end,
            message=(f"High-value customer {customer_id} (class {abc}) posted {len(negative_posts)} negative "
                     f"post(s) as {account}; before: {negative_before} of {rated_before} rated posts negative"),
            evidence={"customer_id": customer_id, "abc_class": abc, "clv_12m": clv, "monetary": monetary,
                      "account": account, "rated_before": rated_before, "negative_before": negative_before,
                      "post_ids": list(negative_posts)[:MAX_EVIDENCE_POSTS]},
        ))
    return alerts


def suppress_repeats(
    con: duckdb.DuckDBPyConnection, alerts: list[Alert], cooldown_minutes: int, now: datetime | None = None
) -> list[Alert]:
    """Drop alerts stored before, and repeats of a rule and subject inside the cooldown unless more severe."""
    now = now or datetime.now(UTC)
    since = now - timedelta(minutes=cooldown_minutes)
    rows = con.execute(
        "SELECT alert_id, rule, subject, severity, fired_at FROM alerts WHERE fired_at >= ? OR list_contains(?, alert_id)",
        [since, [a.alert_id for a in alerts]],
    ).fetchall()
    known = {r[0] for r in rows}
    worst: dict[tuple[str, str], int] = {}
    for _, rule, subject, severity, fired_at in rows:
        if as_utc(fired_at) >= since:
            key = (rule, subject)
            worst[key] = max(worst.get(key, -1), SEVERITY_ORDER.get(severity, 0))
    kept = []
    for alert in alerts:
        if alert.alert_id in known:
            continue
        if SEVERITY_ORDER[alert.severity] <= worst.get((alert.rule, alert.subject), -1):
            continue
        kept.append(alert)
    return kept
