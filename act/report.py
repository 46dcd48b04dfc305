"""Build the marketing report: numbers from the warehouse, charts as PNG, one self-contained HTML file."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
from jinja2 import Environment, FileSystemLoader, select_autoescape

from act import charts
from act.facts import BRAND_FACTS_SQL, POST_FACTS_SQL, RankedAccount, Window, current_ranking, resolve_window
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
