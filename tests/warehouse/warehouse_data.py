"""Build a populated warehouse file from the bundled real samples (posts, CRM, invoices).

Posts, accounts and interactions are the real recorded X pages (TWCS English customer care,
GermEval German Deutsche Bahn tweets) parsed by the real connector. Language annotations come
from the dataset each page belongs to, sentiment from VADER, brand mentions from the bundled
brand configuration, influence scores from inbound interaction counts. The CRM is the real UCI
sample with its SYNTHETIC identity overlay.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path

import duckdb
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from connectors.x import XReplayConnector
from resonanz.settings import SAMPLE_DIR, load_settings
from warehouse.crm import import_customers, import_identities, link_accounts_by_handle
from warehouse.customer_value import compute_customer_value, import_invoices
from warehouse.db import open_warehouse
from warehouse.load import load_pages
from warehouse.stages import save_enrichment, save_scores

NOW = datetime(2026, 11, 1, tzinfo=UTC)
PAGES = {"x_twcs_en": ("en", 3), "x_germeval_db_de": ("de", 3)}


@dataclass(slots=True)
class Annotation:
    source: str
    post_id: str
    task: str
    label: str | None
    score: float | None
    model_name: str
    model_version: str


@dataclass(slots=True)
class BrandMention:
    source: str
    post_id: str
    brand: str
    brand_kind: str
    matched_text: str
    start_char: int
    sentiment: str | None


@dataclass(slots=True)
class Score:
    as_of: datetime
    source: str
    account_id: str
    rank: int
    score: float
    pagerank: float | None
    in_degree: float | None
    out_degree: float | None
    explanation: str
    factors: dict[str, float]
    person_id: str | None = None


def _sentiment(analyzer: SentimentIntensityAnalyzer, text: str) -> tuple[str, float]:
    compound = analyzer.polarity_scores(text)["compound"]
    label = "positive" if compound >= 0.05 else "negative" if compound <= -0.05 else "neutral"
    return label, abs(compound)


def _brand_patterns() -> list[tuple[str, str, re.Pattern[str]]]:
    patterns = []
    for brand in load_settings(config_file=Path("/nonexistent-resonanz.toml")).brands:
        names = sorted({*brand.aliases, *brand.handles, brand.name}, key=len, reverse=True)
        alternation = "|".join(re.escape(n) for n in names)
        patterns.append((brand.name, brand.kind, re.compile(rf"(?<!\w)@?({alternation})(?!\w)", re.IGNORECASE)))
    return patterns


def enrich(con: duckdb.DuckDBPyConnection, language_of: dict[str, str]) -> None:
    """Annotate language and sentiment and find brand mentions for every post."""
    analyzer = SentimentIntensityAnalyzer()
    patterns = _brand_patterns()
    rows = con.execute("SELECT source, post_id, text FROM posts ORDER BY post_id").fetchall()
    annotations, mentions = [], []
    for source, post_id, text in rows:
        label, score = _sentiment(analyzer, text)
        annotations.append(Annotation(source, post_id, "sentiment", label, score, "vader", "3.3.2"))
        annotations.append(Annotation(source, post_id, "language", language_of[post_id], 1.0, "dataset", "1"))
        for brand, kind, pattern in patterns:
            for match in pattern.finditer(text):
                mentions.append(BrandMention(source, post_id, brand, kind, match.group(0), match.start(), None))
    save_enrichment(con, [(s, p) for s, p, _ in rows], annotations, [], mentions, now=NOW)


def rank(con: duckdb.DuckDBPyConnection, run_id: str, until: datetime | None = None) -> int:
    """Store an influence ranking by inbound interactions (up to `until`)."""
    rows = con.execute(
        """
        SELECT source, dst_account_id, count(*) AS n, count(DISTINCT src_account_id) AS voices,
               max(created_at) AS newest
        FROM interactions WHERE ? IS NULL OR created_at <= ?
        GROUP BY ALL ORDER BY n DESC, dst_account_id
        """,
        [until, until],
    ).fetchall()
    if not rows:
        return 0
    as_of = max(r[4] for r in rows)
    total = sum(r[2] for r in rows)
    scores = [
        Score(as_of, source, account, i + 1, n / total, None, float(n), None,
              f"@{account} drew {n} interactions from {voices} accounts", {"in_degree": float(n)})
        for i, (source, account, n, voices, _) in enumerate(rows)
    ]
    return save_scores(con, scores, run_id)


def build_warehouse(path: Path) -> Path:
    """Create and fill a warehouse file; returns its path."""
    con = open_warehouse(path)
    try:
        language_of: dict[str, str] = {}
        for folder, (language, n_pages) in PAGES.items():
            connector = XReplayConnector(SAMPLE_DIR / folder, folder, folder)
            pages = list(islice(connector.fetch(None), n_pages))
            load_pages(con, pages, now=NOW)
            language_of.update({p.post_id: language for page in pages for p in page.posts})
        enrich(con, language_of)
        first = con.execute("SELECT min(created_at) + INTERVAL 10 DAY FROM interactions").fetchall()[0][0]
        rank(con, "run-older", until=first)
        rank(con, "run-latest")
        crm = SAMPLE_DIR / "crm"
        import_customers(con, crm / "customers.csv", "uci", now=NOW)
        import_identities(con, crm / "identity_overlay.csv")
        import_invoices(con, crm / "invoices.csv", "uci", now=NOW)
        compute_customer_value(con, now=NOW)
        link_accounts_by_handle(con, now=NOW)
        con.execute("CHECKPOINT")
    finally:
        con.close()
    return path
