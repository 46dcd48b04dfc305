"""The real `listening_pipeline` flow, end to end, on the bundled sample plus bad input.

Runs the flow twice on Prefect's test harness against a temporary DuckDB file: the first run
must store exactly what the sample holds, the second must add nothing.
"""

from __future__ import annotations

import json
from contextlib import closing
from pathlib import Path

import feedparser
import pytest

from resonanz.settings import SAMPLE_DIR, load_settings
from warehouse.db import open_warehouse, table_counts
from warehouse.schema import DATA_TABLES

BAD_INPUT = Path(__file__).parents[1] / "fixtures" / "bad_input"


def _toml_sources(sources: list[dict[str, str]]) -> str:
    lines = []
    for source in sources:
        lines.append("[[sources]]")
        lines.extend(f'{key} = "{value}"' for key, value in source.items())
        lines.append("")
    return "\n".join(lines)


def _sample_tweet_ids(folder: Path) -> set[str]:
    ids: set[str] = set()
    for page in sorted(folder.glob("page-*.json")):
        ids.update(t["id"] for t in json.loads(page.read_text(encoding="utf-8"))["data"])
    return ids


def _sample_feed_entries() -> int:
    opml = (SAMPLE_DIR / "feeds" / "feeds.opml").read_text(encoding="utf-8")
    feeds = [line.split('xmlUrl="')[1].split('"')[0] for line in opml.splitlines() if "xmlUrl=" in line]
    return sum(len(feedparser.parse((SAMPLE_DIR / "feeds" / f).read_bytes()).entries) for f in feeds)


@pytest.fixture(scope="module")
def two_runs(prefect_harness, tmp_path_factory):
    from flows.listening import listening_pipeline

    workdir = tmp_path_factory.mktemp("pipeline")
    sources = [{"name": s.name, "connector": s.connector, "stream": s.stream} for s in load_settings().sources]
    sources += [
        {"name": "bad_x", "connector": "x_replay", "stream": str(BAD_INPUT / "x")},
        {"name": "bad_feed", "connector": "rss", "stream": str(BAD_INPUT / "feeds" / "broken.xml")},
    ]
    config = workdir / "resonanz.toml"
    config.write_text(_toml_sources(sources), encoding="utf-8")
    db = workdir / "resonanz.duckdb"
    kwargs = {"config_file": str(config), "duckdb_path": str(db), "report_dir": str(workdir / "reports"),
              "alert_period": "all"}  # the sample is historical: evaluate the alert rules over all of it

    first = listening_pipeline(**kwargs)
    with closing(open_warehouse(db, read_only=True)) as con:
        counts_first = table_counts(con, DATA_TABLES)
    second = listening_pipeline(**kwargs)
    with closing(open_warehouse(db, read_only=True)) as con:
        counts_second = table_counts(con, (*DATA_TABLES, "pipeline_runs"))
    return {"first": first, "second": second, "counts_first": counts_first, "counts_second": counts_second,
            "db": db}


def test_first_run_stores_exactly_the_sample(two_runs):
    counts = two_runs["counts_first"]
    tweets = _sample_tweet_ids(SAMPLE_DIR / "x_twcs_en") | _sample_tweet_ids(SAMPLE_DIR / "x_germeval_db_de")
    # bad_input/x: a real tweet (also in the DE sample) and one without author (kept, author
    # unknown); the tweet with empty text is quarantined.
    tweets |= {"718382187792478208", "900000000000000002"}
    good_bad_feed_entries = 2  # the good item and the one feedparser recovered from the truncation
    with closing(open_warehouse(two_runs["db"], read_only=True)) as con:
        x_posts = con.execute("SELECT count(*) FROM posts WHERE source = 'x'").fetchone()[0]
        rss_posts = con.execute("SELECT count(*) FROM posts WHERE source = 'rss'").fetchone()[0]
        rss_quarantined = con.execute("SELECT count(*) FROM quarantine WHERE source = 'rss'").fetchone()[0]
        enriched = con.execute("SELECT count(DISTINCT (source, post_id)) FROM annotations").fetchone()[0]
        cursors = con.execute("SELECT count(*) FROM cursors").fetchone()[0]
    assert x_posts == len(tweets)
    # Every feed entry is either a post or a quarantined record with a reason: nothing is lost.
    assert rss_posts + rss_quarantined >= _sample_feed_entries() + good_bad_feed_entries
    assert counts["posts"] == x_posts + rss_posts
    assert enriched == counts["posts"]
    assert counts["customers"] == 4372
    assert counts["account_customer_links"] > 0
    assert counts["influence_scores"] > 0
    assert cursors >= 5


def test_second_run_adds_no_rows(two_runs):
    second = dict(two_runs["counts_second"])
    assert second.pop("pipeline_runs") == 2  # the run log is the one table that grows
    assert second == two_runs["counts_first"]
    # Nothing new was collected or enriched the second time.
    assert two_runs["second"].stage_counts["enrich"]["posts"] == 0


def test_bad_input_is_quarantined_with_reasons(two_runs):
    with closing(open_warehouse(two_runs["db"], read_only=True)) as con:
        reasons = [r[0] for r in con.execute("SELECT reason FROM quarantine ORDER BY reason").fetchall()]
        statuses = [r[0] for r in con.execute("SELECT status FROM pipeline_runs").fetchall()]
    assert any("text" in r.lower() for r in reasons), reasons
    assert len(reasons) >= 2
    assert statuses == ["completed", "completed"]


def test_known_accounts_rank_in_top_10(two_runs):
    top = two_runs["first"].top
    assert len(top) == 10
    assert {"amazonhelp", "db_bahn"} & {t.account_id for t in top}  # X ids; handles keep their case
    assert len({t.handle.lower() for t in top}) == 10  # one account, however its handle is written
    assert all(t.explanation for t in top)
    assert [t.rank for t in top] == list(range(1, 11))


def test_report_and_alerts_written(two_runs):
    report = Path(two_runs["first"].report_path)
    html = report.read_text(encoding="utf-8")
    assert "Deutsche Bahn" in html and "data:image/png;base64," in html
    with closing(open_warehouse(two_runs["db"], read_only=True)) as con:
        alerts = con.execute("SELECT count(*) FROM alerts").fetchone()[0]
    assert alerts == two_runs["first"].alerts_fired > 0
    assert two_runs["second"].alerts_fired == 0  # same alerts are not fired twice
