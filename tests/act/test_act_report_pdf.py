"""The PDF report (WeasyPrint) from the fixture warehouse, read back with pypdf, plus `resonanz report`."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from pypdf import PdfReader
from typer.testing import CliRunner

from act.report import period_window, report_data, write_report
from resonanz.settings import Brand

LATEST = datetime(2017, 10, 31, 23, 32, 26, tzinfo=UTC)
PREVIOUS = LATEST - timedelta(days=1)
NOW_RANKED = ["AppleSupport", "AmazonHelp", "115855", "115834", "115745", "DB_Bahn", "Scherben81", "CoxHelp",
              "116019", "XboxSupport", "115820"]


def _add_history_customers_and_communities(con: duckdb.DuckDBPyConnection) -> None:
    """Give the fixture what other rooms store: a previous ranking, CRM values and links, a community."""
    # The previous ranking in reverse order: @115855 climbs from rank 9 to rank 3.
    for rank, account in enumerate(reversed(NOW_RANKED), start=1):
        con.execute("INSERT INTO influence_scores (as_of, source, account_id, rank, score, explanation, run_id)"
                    " VALUES (?, 'x', ?, ?, ?, 'previous', 'fixture-previous')", [PREVIOUS, account, rank, 0.1 / rank])
    computed = datetime(2026, 1, 1, tzinfo=UTC)
    for customer, abc, monetary in [("17850", "A", 5391.2), ("13047", "B", 3079.1), ("12583", "C", 640.0)]:
        con.execute("INSERT INTO customer_value VALUES (?, ?, 'champions', '555', 3, 10, ?, 0.9, 1000.0, ?)",
                    [customer, abc, monetary, computed])
    for account, customer in [("115855", "17850"), ("115834", "13047")]:
        con.execute("INSERT INTO account_customer_links VALUES ('x', ?, ?, 0.97, 'handle', 'confirmed', ?)",
                    [account, customer, computed])
    con.execute(
        "INSERT INTO communities VALUES (?, 0, 14, 0.42, ['x/AppleSupport', 'x/115855'], ?, -0.3,"
        " 'iOS 11 support threads around @AppleSupport', 'fixture')",
        [LATEST, json.dumps({"Apple": 12})],
    )


@pytest.fixture
def pdf_text(con: duckdb.DuckDBPyConnection, brands: list[Brand], tmp_path: Path) -> tuple[str, int]:
    _add_history_customers_and_communities(con)
    out = write_report(con, brands, tmp_path / "report.pdf", *period_window(con, "all"))
    reader = PdfReader(out)
    text = "\n".join(page.extract_text() for page in reader.pages)
    return re.sub(r"\s+", " ", text), len(reader.pages)


def test_pdf_report_has_every_section_with_the_warehouse_numbers(
    pdf_text: tuple[str, int], con: duckdb.DuckDBPyConnection, brands: list[Brand]
) -> None:
    text, pages = pdf_text
    data = report_data(con, brands)
    assert 3 <= pages <= 8
    assert f"page 1 of {pages}" in text
    for heading in ("Resonanz listening report", "Volume by source", "Sentiment: English vs German",
                    "Brand mentions and share of voice", "Top 10 influencers", "Rising influencers",
                    "Communities", "Customers by value class", "Notable posts"):
        assert heading in text, heading
    assert str(data.total_posts) in text and "Deutsche Bahn" in text and "@AppleSupport" in text
    # Rising: the fallback compares the two newest rankings.
    assert "rank 9 → rank 3" in text
    # Communities and customers come from the other rooms' tables.
    assert "iOS 11 support threads around @AppleSupport" in text
    assert re.search(r"A 1 5,391 1 1", text), "class A: one customer, linked and posting"
    assert "17850" in text and "@115855" in text


def test_sections_degrade_to_a_plain_sentence_without_other_rooms_data(
    con: duckdb.DuckDBPyConnection, brands: list[Brand]
) -> None:
    data = report_data(con, brands)
    assert data.rising == [] and data.communities == [] and data.customer_classes == []
    from act.report import render_html

    html = render_html(data)
    assert "No rising influencers yet" in html and "No customer values in the warehouse" in html


def test_named_periods_end_at_the_newest_post(con: duckdb.DuckDBPyConnection) -> None:
    start, end = period_window(con, "last-week")
    assert end == LATEST and start == LATEST - timedelta(days=7)
    assert period_window(con, "last-month")[0] == LATEST - timedelta(days=30)
    assert period_window(con, "all") == (None, None)
    with pytest.raises(ValueError, match="last-week, last-month or all"):
        period_window(con, "yesterday")


def test_cli_report_writes_html_for_a_period_and_refuses_other_formats(warehouse_file: Path, tmp_path: Path) -> None:
    from resonanz.cli import app

    runner = CliRunner()
    out = tmp_path / "weekly.html"
    done = runner.invoke(app, ["report", "--period", "last-week", "--out", str(out), "--duckdb", str(warehouse_file)])
    assert done.exit_code == 0, done.output
    assert "2017-10-24 – 2017-10-31" in done.output and out.stat().st_size > 20_000
    assert "Period: 2017-10-24 23:32 UTC" in out.read_text(encoding="utf-8")
    bad = runner.invoke(app, ["report", "--out", str(tmp_path / "r.docx"), "--duckdb", str(warehouse_file)])
    assert bad.exit_code == 2 and ".html or .pdf" in bad.output
