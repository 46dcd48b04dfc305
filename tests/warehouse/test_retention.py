"""Retention policies on raw payloads and pseudonymised exports, on a real DuckDB file."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import islice
from pathlib import Path

import duckdb
import pytest

from connectors.rss import RssConnector
from connectors.x import XReplayConnector
from resonanz.settings import SAMPLE_DIR, RetentionPolicy, load_settings
from warehouse.db import open_warehouse
from warehouse.export import export_all
from warehouse.load import load_pages
from warehouse.pseudonym import KEY_ENV, MissingPseudonymKey
from warehouse.retention import apply_retention

NOW = datetime(2026, 11, 1, tzinfo=UTC)
OLD = NOW - timedelta(days=200)
RECENT = NOW - timedelta(days=5)


def _aged(pages, retrieved_at):
    return [replace(p, raw=replace(p.raw, provenance=replace(p.raw.provenance, retrieved_at=retrieved_at)))
            for p in pages]


@pytest.fixture
def con(tmp_path: Path):
    """Germeval page 1 and the RSS feeds collected 200 days ago; germeval page 2 five days ago."""
    con = open_warehouse(tmp_path / "w.duckdb")
    x_pages = list(islice(XReplayConnector(SAMPLE_DIR / "x_germeval_db_de", "x_sample_de", "x_sample_de").fetch(None), 2))
    feeds = list(islice(RssConnector(str(SAMPLE_DIR / "feeds" / "feeds.opml"), "feeds_sample", "feeds").fetch(None), 2))
    load_pages(con, _aged(x_pages[:1], OLD) + _aged(feeds, OLD), now=OLD)
    load_pages(con, _aged(x_pages[1:], RECENT), now=RECENT)
    yield con
    con.close()


def _raw(con) -> dict[str, tuple[str, datetime, str]]:
    return {r[0]: (r[1], r[2], r[3]) for r in con.execute("SELECT raw_id, source, retrieved_at, body FROM raw_payloads").fetchall()}


def _handles_in(body: str) -> set[str]:
    """Every account the page names: its users and the accounts its tweets mention."""
    page = json.loads(body)
    users = {u["username"] for u in page["includes"]["users"]}
    mentioned = {m["username"] for t in page["data"] for m in (t.get("entities") or {}).get("mentions", [])}
    return {h for h in users | mentioned if len(h) >= 3}


def test_delete_removes_old_payloads_of_that_source_only(con):
    before = _raw(con)
    report = apply_retention(con, [RetentionPolicy(source="x_replay", raw_payload_days=30)], now=NOW)
    after = _raw(con)
    old_x = {k for k, (s, t, _) in before.items() if s == "x_replay" and t < NOW - timedelta(days=30)}
    assert len(old_x) == 1 and report.deleted == {"x_replay": 1} and report.pseudonymised == {}
    assert set(after) == set(before) - old_x  # the recent X page and every (old) RSS payload stay
    assert any(s == "rss" for s, _, _ in after.values())
    # Parsed rows stay; their raw_id now points nowhere.
    dangling = con.execute("SELECT count(*) FROM posts WHERE raw_id IN (SELECT unnest(?))", [sorted(old_x)]).fetchall()[0][0]
    assert dangling == 100
    again = apply_retention(con, [RetentionPolicy(source="x_replay", raw_payload_days=30)], now=NOW)
    assert again.total_deleted == 0 and _raw(con) == after


def test_wildcard_policy_and_no_policy(con):
    before = _raw(con)
    assert apply_retention(con, [], now=NOW).total_deleted == 0
    assert apply_retention(con, [RetentionPolicy(source="*", raw_payload_days=None)], now=NOW).total_deleted == 0
    assert _raw(con) == before
    # A source's own policy wins over "*": RSS keeps a year, everything else 30 days.
    report = apply_retention(con, [RetentionPolicy(source="*", raw_payload_days=30),
                                   RetentionPolicy(source="rss", raw_payload_days=365)], now=NOW)
    assert set(report.deleted) == {"x_replay"}
    assert {s for s, _, _ in _raw(con).values()} == {"x_replay", "rss"}


def test_pseudonymise_rewrites_old_bodies_without_handles_and_is_idempotent(con, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "test-secret-key")
    before = _raw(con)
    (old_body,) = [b for s, t, b in before.values() if s == "x_replay" and t < NOW - timedelta(days=30)]
    handles = _handles_in(old_body)
    assert "lolloseb" in handles and "KuttnerSarah" in handles and len(handles) > 100
    policies = [RetentionPolicy(source="x_replay", raw_payload_days=30, mode="pseudonymise")]
    report = apply_retention(con, policies, now=NOW)
    after = _raw(con)
    assert report.pseudonymised == {"x_replay": 1} and report.deleted == {}
    assert set(after) == set(before)
    (raw_id,) = [k for k in after if after[k][2] != before[k][2]]
    body = after[raw_id][2]
    parsed = json.loads(body)
    assert len(parsed["data"]) == 100 and parsed["data"][0]["author_id"].startswith("p_")
    lowered = body.lower()
    assert [h for h in handles if f'"{h.lower()}"' in lowered or f"@{h.lower()}" in lowered] == []
    # Tweets' own text survives; only names change.
    assert "Fußgänger von S-Bahn erfasst" in body
    # The recent page and the RSS payloads are untouched.
    assert {k: v for k, v in after.items() if k != raw_id} == {k: v for k, v in before.items() if k != raw_id}
    again = apply_retention(con, policies, now=NOW)
    assert again.total_pseudonymised == 0 and _raw(con) == after


def test_pseudonymise_without_key_says_which_variable(con, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    before = _raw(con)
    with pytest.raises(MissingPseudonymKey, match=KEY_ENV):
        apply_retention(con, [RetentionPolicy(source="*", raw_payload_days=1, mode="pseudonymise")], now=NOW)
    assert _raw(con) == before


def test_policies_come_from_toml(tmp_path):
    config = tmp_path / "resonanz.toml"
    config.write_text('[[retention]]\nsource = "x_replay"\nraw_payload_days = 90\nmode = "pseudonymise"\n'
                      '[[retention]]\nsource = "*"\nraw_payload_days = 365\n')
    settings = load_settings(config)
    assert [(p.source, p.raw_payload_days, p.mode) for p in settings.retention] == [
        ("x_replay", 90, "pseudonymise"), ("*", 365, "delete")]
    assert load_settings(tmp_path / "none.toml").retention == []


def test_pseudonymised_export_names_nobody_but_still_joins(populated_copy, tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "test-secret-key")
    handles = {h for (h,) in populated_copy.execute(
        "SELECT handle FROM accounts WHERE length(handle) >= 3").fetchall()}
    plain = export_all(populated_copy, tmp_path / "plain", formats=("csv",))
    shared = export_all(populated_copy, tmp_path / "shared", formats=("csv", "parquet"), pseudonymise=True)
    assert shared.rows == plain.rows
    reader = duckdb.connect()
    csv_dir = tmp_path / "shared" / "csv"
    text = "\n".join(p.read_text() for p in csv_dir.glob("*.csv")).lower()
    plain_text = "\n".join(p.read_text() for p in (tmp_path / "plain" / "csv").glob("*.csv")).lower()
    named = {h for h in handles if f"@{h.lower()}" in plain_text}
    assert len(named) > 50  # the plain export does name people
    assert [h for h in named if f"@{h.lower()}" in text] == []
    # No handle as a whole value anywhere but in the brand columns, which name brands, not people.
    people = "\n".join(p.read_text() for p in csv_dir.glob("*.csv")
                       if p.stem not in ("brand_mentions_daily", "share_of_voice")).lower()
    assert [h for h in handles if f",{h.lower()}," in people] == []
    assert ",lufthansa,competitor," in text  # brand names are kept
    ids = handles | {i for (i,) in populated_copy.execute("SELECT account_id FROM accounts").fetchall()}
    for dataset, columns in (("posts", "author_id, author_handle"), ("top_influencers", "account_id, handle"),
                             ("customer_accounts", "account_id, handle")):
        values = reader.execute(f"SELECT DISTINCT unnest([{columns}]) FROM read_csv('{csv_dir}/{dataset}.csv', "
                                "all_varchar = true)").fetchall()
        assert values and {v for (v,) in values if v} & ids == set(), dataset
    # Same key, same pseudonym: posts' authors join the influencers list.
    joined = reader.execute(
        f"SELECT count(*) FROM read_csv('{csv_dir}/posts.csv') p "
        f"JOIN read_csv('{csv_dir}/top_influencers.csv') t ON t.account_id = p.author_id").fetchall()[0][0]
    plain_joined = reader.execute(
        f"SELECT count(*) FROM read_csv('{tmp_path}/plain/csv/posts.csv') p "
        f"JOIN read_csv('{tmp_path}/plain/csv/top_influencers.csv') t ON t.account_id = p.author_id").fetchall()[0][0]
    assert joined == plain_joined > 0
    authors = reader.execute(f"SELECT DISTINCT author_id FROM read_csv('{csv_dir}/posts.csv')").fetchall()
    assert all(a.startswith("p_") and len(a) == 18 for (a,) in authors)
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(MissingPseudonymKey, match=KEY_ENV):
        export_all(populated_copy, tmp_path / "nokey", pseudonymise=True)
