"""The marketing report, rendered from a real DuckDB warehouse of real EN and DE posts."""

from __future__ import annotations

import base64
import re
import struct
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import duckdb
import pytest

from act.report import render_report, report_data
from resonanz.settings import Brand


class _Collector(HTMLParser):
    """Collect every tag with its attributes, and fail on unbalanced structure elements."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.stack: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag in {"html", "head", "body", "main", "section", "table", "div", "details"}:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in {"html", "head", "body", "main", "section", "table", "div", "details"}:
            assert self.stack and self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1:]}>"
            self.stack.pop()


def _parse(html: str) -> _Collector:
    parser = _Collector()
    parser.feed(html)
    parser.close()
    assert parser.stack == [], f"unclosed elements: {parser.stack}"
    return parser


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


@pytest.fixture
def report_html(con: duckdb.DuckDBPyConnection, brands: list[Brand], tmp_path: Path) -> str:
    out = render_report(con, brands, tmp_path / "reports" / "report.html")
    assert out.exists()
    return out.read_text(encoding="utf-8")


def test_report_is_valid_self_contained_html(report_html: str) -> None:
    assert report_html.startswith("<!DOCTYPE html>")
    parsed = _parse(report_html)
    tags = [t for t, _ in parsed.tags]
    assert tags.count("html") == tags.count("body") == 1
    # Opening the file must need no network: no external scripts, styles, images or fonts.
    for tag, attrs in parsed.tags:
        assert tag not in {"script", "iframe", "link"}, tag
        assert not re.match(r"^(https?:)?//", attrs.get("src") or ""), (tag, attrs.get("src"))
    assert "@import" not in report_html and "url(http" not in report_html


def test_charts_are_embedded_pngs(report_html: str) -> None:
    images = [attrs for tag, attrs in _parse(report_html).tags if tag == "img"]
    assert len(images) == 3  # volume, sentiment EN vs DE, share of voice
    for attrs in images:
        src = attrs["src"] or ""
        assert src.startswith("data:image/png;base64,")
        png = base64.b64decode(src.split(",", 1)[1], validate=True)
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = struct.unpack(">II", png[16:24])  # IHDR: the image's pixel size
        assert width > 400 and height > 80
        assert attrs["alt"]


def test_headline_and_sentiment_numbers_match_sql(con: duckdb.DuckDBPyConnection, report_html: str) -> None:
    total = con.execute("SELECT count(*) FROM posts").fetchone()[0]
    assert total == 70
    assert f'id="total-posts">{total}<' in report_html
    expected = dict(
        ((lang, label), n)
        for lang, label, n in con.execute(
            """
            SELECT l.label, s.label, count(*) FROM posts p
            JOIN annotations l ON l.post_id = p.post_id AND l.task = 'language'
            JOIN annotations s ON s.post_id = p.post_id AND s.task = 'sentiment'
            GROUP BY ALL
            """
        ).fetchall()
    )
    for lang in ("en", "de"):
        row = re.search(rf'<tr data-language="{lang}">(.*?)</tr>', report_html, re.S)
        assert row, lang
        for label in ("negative", "neutral", "positive"):
            cell = re.search(rf'data-sentiment="{label}">(\d+)', row.group(1))
            assert cell and int(cell.group(1)) == expected[(lang, label)], (lang, label)
    # Real gold labels: the German Deutsche Bahn posts skew negative, the English ones do not.
    assert expected[("de", "negative")] == 14 and expected[("en", "negative")] == 9


def test_report_names_brands_and_current_influencers(report_html: str) -> None:
    text = _text(report_html)
    for name in ("Deutsche Bahn", "Apple", "Amazon", "PlayStation", "product of Apple"):
        assert name in text
    influencers = re.search(r'<table id="influencers">(.*?)</table>', report_html, re.S)
    assert influencers
    rows = re.findall(r"<tr><td class=\"n\">(\d+)</td><td><strong>@([^<]+)</strong>", influencers.group(1))
    assert rows[0] == ("1", "AppleSupport")
    assert len(rows) == 10 and "115820" not in [h for _, h in rows]  # the 11th stays out
    assert "Replied to by 9 customers in 6 threads; most replied-to support account" in influencers.group(1)
    assert "StefanRoock" not in influencers.group(1)  # leader of an older ranking only


def test_report_data_numbers(con: duckdb.DuckDBPyConnection, brands: list[Brand]) -> None:
    data = report_data(con, brands)
    assert data.period is not None
    oldest, newest = con.execute("SELECT min(created_at), max(created_at) FROM posts").fetchone()
    assert (data.period.start, data.period.end) == (oldest, newest)
    assert data.period.end == datetime(2017, 10, 31, 23, 32, 26, tzinfo=UTC)
    assert data.total_posts == sum(row.posts for row in data.volume) == 70
    bahn = next(row for row in data.brands if row.name == "Deutsche Bahn")
    assert (bahn.posts, bahn.sentiment.negative) == (31, 14)
    # Share of voice folds products into their owner: Apple = Apple or iPhone posts.
    voice = {s.family: s for s in data.share_of_voice}
    assert "iPhone" not in voice and voice["Apple"].posts == 13
    assert voice["PlayStation"].kind == "competitor"
    assert sum(s.share for s in data.share_of_voice) == pytest.approx(1.0)
    # Most negative about a tracked brand: all rated negative, all about a tracked brand.
    assert data.most_negative and all(p.sentiment == "negative" and p.brands for p in data.most_negative)
    # German gold labels (confidence 1.0) would fill the list alone; instead each of the five
    # brands with negative posts shows its most negative one.
    firsts = sorted(p.brands[0] for p in data.most_negative)
    assert firsts == ["Amazon", "Apple", "Deutsche Bahn", "PlayStation", "Xbox"]
    engagement = [p.engagement for p in data.most_engaged]
    assert engagement == sorted(engagement, reverse=True) and engagement[0] == 2


def test_period_filters_every_section(con: duckdb.DuckDBPyConnection, brands: list[Brand]) -> None:
    start, end = datetime(2017, 10, 31, tzinfo=UTC), datetime(2017, 10, 31, 23, 59, tzinfo=UTC)
    data = report_data(con, brands, start, end)
    expected = con.execute("SELECT count(*) FROM posts WHERE created_at BETWEEN ? AND ?", [start, end]).fetchone()[0]
    assert data.total_posts == expected == 37
    assert set(data.sentiment_by_language) == {"en", "de"}  # one German-language TWCS reply
    assert all(row.name != "Deutsche Bahn" or row.posts == 0 for row in data.brands)
    assert all(start <= p.created_at <= end for p in data.most_negative + data.most_engaged)


def test_empty_warehouse_renders_a_plain_message(tmp_path: Path, brands: list[Brand]) -> None:
    from warehouse.db import open_warehouse

    con = open_warehouse(tmp_path / "empty.duckdb")
    html = render_report(con, brands, tmp_path / "empty.html").read_text(encoding="utf-8")
    con.close()
    _parse(html)
    assert "nothing to report" in html and "<img" not in html


def test_user_text_is_escaped(con: duckdb.DuckDBPyConnection, brands: list[Brand], tmp_path: Path) -> None:
    # Post text is untrusted: a post carrying markup must show as text, not run as HTML.
    con.execute(
        "UPDATE posts SET text = '<script>alert(1)</script> @AppleSupport', reply_count = 99"
        " WHERE post_id = '709'"
    )
    html = render_report(con, brands, tmp_path / "r.html").read_text(encoding="utf-8")
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
