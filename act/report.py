"""Build the marketing report: numbers from the warehouse, charts as PNG, one self-contained HTML file."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Literal

import duckdb
from jinja2 import Environment, FileSystemLoader, select_autoescape

from act import charts
from act.facts import (
    BRAND_FACTS_SQL,
    POST_FACTS_SQL,
    RankedAccount,
    RisingRow,
    Window,
    current_ranking,
    has_rows,
    resolve_window,
    rising_influencers,
)
from resonanz.settings import Brand

SENTIMENTS: tuple[str, ...] = ("negative", "neutral", "positive")
COMPARED_LANGUAGES: tuple[str, ...] = ("en", "de")
TOP_INFLUENCERS = 10
TEMPLATES = Path(__file__).with_name("templates")
NOTABLE_POSTS = 5


@dataclass(frozen=True)
class SentimentCounts:
    """Posts per sentiment label; `unlabelled` have no sentiment annotation yet."""

    negative: int = 0
    neutral: int = 0
    positive: int = 0
    unlabelled: int = 0

    @property
    def labelled(self) -> int:
        return self.negative + self.neutral + self.positive

    def share(self, label: str) -> float:
        """Return the share of `label` among labelled posts (0 when none are labelled)."""
        return getattr(self, label) / self.labelled if self.labelled else 0.0


@dataclass(frozen=True)
class VolumeRow:
    day: date
    source: str
    posts: int


@dataclass(frozen=True)
class BrandRow:
    """Posts mentioning one configured brand, with the sentiment toward it."""

    name: str
    kind: str
    owner: str | None
    posts: int
    sentiment: SentimentCounts


@dataclass(frozen=True)
class VoiceShare:
    """A brand family (a brand with its products, or a competitor) and its share of all mentions."""

    family: str
    kind: str
    posts: int
    share: float


@dataclass(frozen=True)
class NotablePost:
    source: str
    post_id: str
    author: str
    created_at: datetime
    text: str
    url: str | None
    language: str
    sentiment: str | None
    sentiment_score: float | None
    engagement: int
    brands: list[str]


@dataclass(frozen=True)
class CommunityRow:
    """A group of accounts that mostly talk among themselves, from the graph room's newest ranking."""

    community_id: int
    size: int
    influence: float
    leaders: list[str]
    net_sentiment: float | None
    explanation: str


@dataclass(frozen=True)
class CustomerClassRow:
    """Customers of one ABC class and how many of them are active on social media in the period."""

    abc_class: str
    customers: int
    revenue: float
    linked: int  # with a firm link to a social account
    active: int  # linked and posted in the period
    posts: int
    negative_posts: int


@dataclass(frozen=True)
class CustomerRow:
    """A linked customer who posted in the period."""

    customer_id: str
    abc_class: str
    monetary: float
    handle: str
    posts: int
    negative_posts: int
    positive_posts: int
    influence_rank: int | None


@dataclass(frozen=True)
class ReportData:
    """Every number the report shows, for the HTML template, tests and other renderers."""

    title: str
    period: Window | None
    generated_at: datetime
    total_posts: int = 0
    authors: int = 0
    posts_mentioning_brands: int = 0
    volume: list[VolumeRow] = field(default_factory=list)
    sentiment_by_language: dict[str, SentimentCounts] = field(default_factory=dict)
    brands: list[BrandRow] = field(default_factory=list)
    share_of_voice: list[VoiceShare] = field(default_factory=list)
    influencers: list[RankedAccount] = field(default_factory=list)
    most_negative: list[NotablePost] = field(default_factory=list)
    most_engaged: list[NotablePost] = field(default_factory=list)
    rising: list[RisingRow] = field(default_factory=list)
    communities: list[CommunityRow] = field(default_factory=list)
    customer_classes: list[CustomerClassRow] = field(default_factory=list)
    active_customers: list[CustomerRow] = field(default_factory=list)

    @property
    def sources(self) -> list[str]:
        return sorted({row.source for row in self.volume})

    @property
    def languages(self) -> list[str]:
        """Languages present, English and German first."""
        first = [lang for lang in COMPARED_LANGUAGES if lang in self.sentiment_by_language]
        return first + sorted(lang for lang in self.sentiment_by_language if lang not in first)

    @property
    def overall_sentiment(self) -> SentimentCounts:
        counts = self.sentiment_by_language.values()
        return SentimentCounts(*(sum(getattr(c, f) for c in counts) for f in (*SENTIMENTS, "unlabelled")))


def report_data(
    con: duckdb.DuckDBPyConnection,
    brands: list[Brand],
    period_start: datetime | None = None,
    period_end: datetime | None = None,
    title: str = "Resonanz listening report",
) -> ReportData:
    """Collect the report's numbers for the period (default: all dated posts)."""
    generated_at = datetime.now(UTC)
    period = resolve_window(con, period_start, period_end)
    if period is None:
        return ReportData(title=title, period=None, generated_at=generated_at)
    bounds = [period.start, period.end]
    names = [b.name for b in brands]
    total, authors = con.execute(
        f"SELECT count(*), count(DISTINCT (source, author_id)) FROM ({POST_FACTS_SQL})", bounds
    ).fetchone()  # type: ignore[misc]
    mentioning = con.execute(
        f"SELECT count(DISTINCT (source, post_id)) FROM ({BRAND_FACTS_SQL})", [*bounds, names]
    ).fetchone()[0]  # type: ignore[index]
    brand_rows = _brand_rows(con, brands, bounds)
    return ReportData(
        title=title,
        period=period,
        generated_at=generated_at,
        total_posts=int(total),
        authors=int(authors),
        posts_mentioning_brands=int(mentioning),
        volume=_volume(con, bounds),
        sentiment_by_language=_sentiment_by_language(con, bounds),
        brands=brand_rows,
        share_of_voice=_share_of_voice(con, brands, bounds),
        influencers=current_ranking(con, TOP_INFLUENCERS),
        most_negative=_notable(con, bounds, brands, "negative"),
        most_engaged=_notable(con, bounds, brands, "engaged"),
        rising=rising_influencers(con, TOP_INFLUENCERS),
        communities=_communities(con),
        customer_classes=_customer_classes(con, bounds),
        active_customers=_active_customers(con, bounds),
    )


def render_report(
    con: duckdb.DuckDBPyConnection,
    brands: list[Brand],
    out_path: Path,
    period_start: datetime | None = None,
    period_end: datetime | None = None,
    title: str = "Resonanz listening report",
) -> Path:
    """Write the report as one HTML file with embedded charts and return its path."""
    data = report_data(con, brands, period_start, period_end, title)
    html = render_html(data)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(html, encoding="utf-8")
    return out_path


def render_html(data: ReportData) -> str:
    """Render report data to a self-contained HTML string."""
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "j2"]))
    env.filters["pct"] = charts.percent
    env.filters["num"] = lambda value: f"{value:,}"
    env.filters["when"] = lambda value: value.strftime("%Y-%m-%d %H:%M UTC") if value else "–"
    template = env.get_template("report.html.j2")
    return template.render(
        data=data,
        sentiments=SENTIMENTS,
        compared_languages=COMPARED_LANGUAGES,
        volume_chart=charts.volume_chart(data.volume, data.period.start.date(), data.period.end.date())
        if data.volume and data.period else None,
        sentiment_chart=charts.sentiment_chart(
            {lang: data.sentiment_by_language.get(lang, SentimentCounts()) for lang in COMPARED_LANGUAGES}
        ) if data.total_posts else None,
        voice_chart=charts.share_of_voice_chart(data.share_of_voice) if data.share_of_voice else None,
    )


def _volume(con: duckdb.DuckDBPyConnection, bounds: list[datetime]) -> list[VolumeRow]:
    rows = con.execute(
        f"""
        SELECT CAST(created_at AS DATE) AS day, source, count(*)
        FROM ({POST_FACTS_SQL}) GROUP BY ALL ORDER BY day, source
        """,
        bounds,
    ).fetchall()
    return [VolumeRow(day=r[0], source=r[1], posts=int(r[2])) for r in rows]


def _sentiment_by_language(con: duckdb.DuckDBPyConnection, bounds: list[datetime]) -> dict[str, SentimentCounts]:
    rows = con.execute(
        f"""
        SELECT language,
               count(*) FILTER (sentiment = 'negative'),
               count(*) FILTER (sentiment = 'neutral'),
               count(*) FILTER (sentiment = 'positive'),
               count(*) FILTER (sentiment IS NULL OR sentiment NOT IN ('negative', 'neutral', 'positive'))
        FROM ({POST_FACTS_SQL}) GROUP BY language ORDER BY count(*) DESC
        """,
        bounds,
    ).fetchall()
    return {r[0]: SentimentCounts(*(int(v) for v in r[1:])) for r in rows}


def _brand_rows(con: duckdb.DuckDBPyConnection, brands: list[Brand], bounds: list[datetime]) -> list[BrandRow]:
    rows = con.execute(
        f"""
        SELECT brand,
               count(DISTINCT (source, post_id)),
               count(DISTINCT (source, post_id)) FILTER (brand_sentiment = 'negative'),
               count(DISTINCT (source, post_id)) FILTER (brand_sentiment = 'neutral'),
               count(DISTINCT (source, post_id)) FILTER (brand_sentiment = 'positive'),
               count(DISTINCT (source, post_id)) FILTER (brand_sentiment IS NULL)
        FROM ({BRAND_FACTS_SQL}) GROUP BY brand
        """,
        [*bounds, [b.name for b in brands]],
    ).fetchall()
    found = {r[0]: r for r in rows}
    result = []
    for brand in brands:
        r = found.get(brand.name, (brand.name, 0, 0, 0, 0, 0))
        counts = SentimentCounts(*(int(v) for v in r[2:]))
        result.append(BrandRow(brand.name, brand.kind, brand.owner, int(r[1]), counts))
    return sorted(result, key=lambda row: (-row.posts, row.name))


def _share_of_voice(con: duckdb.DuckDBPyConnection, brands: list[Brand], bounds: list[datetime]) -> list[VoiceShare]:
    names = {b.name for b in brands}
    family = _families(brands)
    kind = {b.name: b.kind for b in brands}
    rows = con.execute(
        f"SELECT brand, source, post_id FROM ({BRAND_FACTS_SQL})", [*bounds, sorted(names)]
    ).fetchall()
    posts: dict[str, set[tuple[str, str]]] = {}
    for brand, source, post_id in rows:
        posts.setdefault(family[brand], set()).add((source, post_id))
    total = sum(len(p) for p in posts.values())
    shares = [
        VoiceShare(name, "competitor" if kind[name] == "competitor" else "brand", len(p), len(p) / total)
        for name, p in posts.items()
    ]
    return sorted(shares, key=lambda s: (-s.posts, s.family))


def _notable(
    con: duckdb.DuckDBPyConnection, bounds: list[datetime], brands: list[Brand], which: str
) -> list[NotablePost]:
    names = [b.name for b in brands]
    family = _families(brands)
    if which == "negative":
        # Round-robin over brands: every brand's most confident negative post first, then every
        # brand's second, so one loud brand cannot fill the list alone. Products count with their
        # owner here, or a brand with many products would still crowd out the others.
        query = f"""
            WITH negative AS (
                SELECT *, row_number() OVER (
                    PARTITION BY (?::VARCHAR[])[list_position(?::VARCHAR[], brand)]
                    ORDER BY sentiment_score DESC NULLS LAST, engagement DESC, created_at DESC, post_id
                ) AS brand_rank
                FROM ({BRAND_FACTS_SQL}) WHERE brand_sentiment = 'negative'
            )
            SELECT source, post_id, any_value(author_id) AS author_id, any_value(created_at),
                   any_value(text), any_value(url), any_value(language), 'negative',
                   any_value(sentiment_score), any_value(engagement), list(DISTINCT brand ORDER BY brand)
            FROM negative
            GROUP BY source, post_id
            ORDER BY min(brand_rank), any_value(sentiment_score) DESC NULLS LAST,
                     any_value(engagement) DESC, post_id
            LIMIT ?
        """
        params: list[object] = [[family[n] for n in names], names, *bounds, names, NOTABLE_POSTS]
    else:
        query = f"""
            WITH facts AS ({POST_FACTS_SQL}),
            mentioned AS (
                SELECT source, post_id, list(DISTINCT brand ORDER BY brand) AS brands
                FROM brand_mentions WHERE list_contains(?, brand) GROUP BY ALL
            )
            SELECT f.source, f.post_id, f.author_id, f.created_at, f.text, f.url, f.language,
                   f.sentiment, f.sentiment_score, f.engagement, coalesce(m.brands, [])
            FROM facts f LEFT JOIN mentioned m USING (source, post_id)
            WHERE f.engagement > 0
            ORDER BY f.engagement DESC, f.created_at DESC, f.post_id
            LIMIT ?
        """
        params = [*bounds, names, NOTABLE_POSTS]
    rows = con.execute(query, params).fetchall()
    handles = _handles(con, {(r[0], r[2]) for r in rows})
    return [
        NotablePost(
            source=r[0], post_id=r[1], author=handles.get((r[0], r[2])) or r[2] or "unknown",
            created_at=r[3], text=r[4], url=r[5],
            language=r[6], sentiment=r[7], sentiment_score=r[8], engagement=int(r[9]), brands=list(r[10]),
        )
        for r in rows
    ]


def _handles(con: duckdb.DuckDBPyConnection, keys: set[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """Map (source, account_id) to the account's handle where the warehouse knows it."""
    if not keys:
        return {}
    rows = con.execute(
        "SELECT source, account_id, handle FROM accounts WHERE handle IS NOT NULL AND list_contains(?, account_id)",
        [sorted({account for _, account in keys if account is not None})],
    ).fetchall()
    return {(r[0], r[1]): r[2] for r in rows if (r[0], r[1]) in keys}



def _families(brands: list[Brand]) -> dict[str, str]:
    """Map each configured name to its family: a product to its owner, anything else to itself."""
    # So "Deutsche Bahn" speaks for ICE and BahnCard too.
    names = {b.name for b in brands}
    return {b.name: (b.owner if b.kind == "product" and b.owner in names else b.name) for b in brands}


# ---- periods and file formats ------------------------------------------------------------------

Period = Literal["last-week", "last-month", "all"]
PERIOD_DAYS: dict[str, int] = {"last-week": 7, "last-month": 30}


def period_window(con: duckdb.DuckDBPyConnection, period: str) -> tuple[datetime | None, datetime | None]:
    """Turn a named period into (start, end): the 7 or 30 days up to the newest post, or everything.

    Anchored on the newest collected post rather than the clock, so a report on an archive (or
    after a collection outage) still covers the latest data and says which dates it covers.
    """
    if period == "all":
        return None, None
    if period not in PERIOD_DAYS:
        raise ValueError(f"unknown period {period!r}: use last-week, last-month or all")
    newest = con.execute("SELECT max(created_at) FROM posts").fetchone()
    if newest is None or newest[0] is None:
        return None, None
    end = newest[0] if newest[0].tzinfo else newest[0].replace(tzinfo=UTC)
    return end - timedelta(days=PERIOD_DAYS[period]), end


def write_report(
    con: duckdb.DuckDBPyConnection,
    brands: list[Brand],
    out_path: Path,
    period_start: datetime | None = None,
    period_end: datetime | None = None,
    title: str = "Resonanz listening report",
) -> Path:
    """Write the report as HTML or PDF, chosen by the file's suffix (.html or .pdf)."""
    out_path = Path(out_path)
    suffix = out_path.suffix.lower()
    if suffix not in (".html", ".htm", ".pdf"):
        raise ValueError(f"{out_path.name}: the report can be written as .html or .pdf")
    if suffix != ".pdf":
        return render_report(con, brands, out_path, period_start, period_end, title)
    html = render_html(report_data(con, brands, period_start, period_end, title))
    out_path.parent.mkdir(parents=True, exist_ok=True)
    html_to_pdf(html, out_path)
    return out_path


def write_report_files(
    con: duckdb.DuckDBPyConnection,
    brands: list[Brand],
    stem: Path,
    period_start: datetime | None = None,
    period_end: datetime | None = None,
    pdf: bool = True,
) -> tuple[Path, Path | None]:
    """Write `stem`.html and (with `pdf`) `stem`.pdf from one query of the warehouse."""
    html = render_html(report_data(con, brands, period_start, period_end))
    stem.parent.mkdir(parents=True, exist_ok=True)
    html_path = stem.with_name(stem.name + ".html")
    html_path.write_text(html, encoding="utf-8")
    return html_path, html_to_pdf(html, stem.with_name(stem.name + ".pdf")) if pdf else None


def html_to_pdf(html: str, out_path: Path) -> Path:
    """Lay the report's HTML out as A4 pages with WeasyPrint (local only: every image is inline)."""
    try:
        from weasyprint import HTML  # noqa: PLC0415 - optional: only PDF output needs it
        from weasyprint.urls import URLFetcher  # noqa: PLC0415
    except ImportError:
        raise RuntimeError(
            "PDF output needs WeasyPrint: `pip install weasyprint` (it uses the system's Pango; on "
            "Debian/Ubuntu `apt-get install libpango-1.0-0 libpangoft2-1.0-0`), or write .html instead"
        ) from None

    # Charts are data: URIs; refusing every other scheme keeps a post's link from being fetched.
    HTML(string=html, url_fetcher=URLFetcher(allowed_protocols={"data"})).write_pdf(out_path)
    return out_path


# ---- sections that depend on other rooms' tables (absent tables give empty sections) --------------

COMMUNITIES_SHOWN = 8
CUSTOMERS_SHOWN = 10

# Customers with a firm link (auto or confirmed) and their posts in the period.
_CUSTOMER_POSTS_SQL = f"""
    WITH facts AS ({POST_FACTS_SQL}),
    linked AS (
        SELECT k.customer_id, k.source, k.account_id FROM account_customer_links k
        WHERE k.status IN ('auto', 'confirmed')
    )
    SELECT l.customer_id, l.source, l.account_id, f.post_id, f.sentiment
    FROM linked l LEFT JOIN facts f ON f.source = l.source AND f.author_id = l.account_id
"""


def _communities(con: duckdb.DuckDBPyConnection) -> list[CommunityRow]:
    if not has_rows(con, "communities"):
        return []
    rows = con.execute(
        """
        SELECT community_id, size, influence, leaders, net_sentiment, explanation FROM communities
        WHERE as_of = (SELECT max(as_of) FROM communities)
        ORDER BY influence DESC, community_id LIMIT ?
        """,
        [COMMUNITIES_SHOWN],
    ).fetchall()
    keys = {tuple(leader.split("/", 1)) for r in rows for leader in (r[3] or [])[:3] if "/" in leader}
    handles = _handles(con, keys)  # type: ignore[arg-type]
    return [
        CommunityRow(int(r[0]), int(r[1]), float(r[2]),
                     [handles.get(tuple(x.split("/", 1)), x.split("/", 1)[-1]) for x in (r[3] or [])[:3]],  # type: ignore[arg-type]
                     r[4], r[5])
        for r in rows
    ]


def _customer_classes(con: duckdb.DuckDBPyConnection, bounds: list[datetime]) -> list[CustomerClassRow]:
    if not has_rows(con, "customer_value"):
        return []
    rows = con.execute(
        f"""
        WITH posts AS ({_CUSTOMER_POSTS_SQL}),
        per_customer AS (
            SELECT customer_id, count(DISTINCT source || account_id) AS accounts, count(post_id) AS posts,
                   count(*) FILTER (sentiment = 'negative') AS negative
            FROM posts GROUP BY customer_id
        )
        SELECT v.abc_class, count(*), sum(v.monetary),
               count(p.customer_id), count(*) FILTER (p.posts > 0),
               coalesce(sum(p.posts), 0), coalesce(sum(p.negative), 0)
        FROM customer_value v LEFT JOIN per_customer p USING (customer_id)
        GROUP BY v.abc_class ORDER BY v.abc_class
        """,
        bounds,
    ).fetchall()
    return [CustomerClassRow(r[0], int(r[1]), float(r[2] or 0), int(r[3]), int(r[4]), int(r[5]), int(r[6]))
            for r in rows]


def _active_customers(con: duckdb.DuckDBPyConnection, bounds: list[datetime]) -> list[CustomerRow]:
    if not has_rows(con, "customer_value"):
        return []
    rows = con.execute(
        f"""
        WITH posts AS ({_CUSTOMER_POSTS_SQL}),
        ranked AS (
            SELECT s.source, s.account_id, s.rank FROM influence_scores s
            JOIN (SELECT source, max(as_of) AS as_of FROM influence_scores GROUP BY source) l USING (source, as_of)
        )
        SELECT v.customer_id, v.abc_class, v.monetary, any_value(coalesce(a.handle, p.account_id)),
               count(p.post_id), count(*) FILTER (p.sentiment = 'negative'),
               count(*) FILTER (p.sentiment = 'positive'), min(r.rank)
        FROM posts p
        JOIN customer_value v USING (customer_id)
        LEFT JOIN accounts a ON a.source = p.source AND a.account_id = p.account_id
        LEFT JOIN ranked r ON r.source = p.source AND r.account_id = p.account_id
        WHERE p.post_id IS NOT NULL
        GROUP BY v.customer_id, v.abc_class, v.monetary
        ORDER BY v.abc_class, v.monetary DESC, v.customer_id
        LIMIT ?
        """,
        [*bounds, CUSTOMERS_SHOWN],
    ).fetchall()
    return [CustomerRow(r[0], r[1], float(r[2]), r[3], int(r[4]), int(r[5]), int(r[6]),
                        None if r[7] is None else int(r[7])) for r in rows]
