"""Loads are idempotent upserts through Arrow, atomic with their cursor."""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime

import pytest

from connectors.records import Account, Cursor, Interaction, Page, Post, Provenance, Quarantined, RawPayload
from warehouse.db import open_warehouse, table_counts, transaction
from warehouse.load import dedupe_last, load_cursor, load_pages
from warehouse.schema import DATA_TABLES, LATEST_VERSION, MIGRATIONS

T0 = datetime(2017, 10, 31, 22, 10, 47, tzinfo=UTC)


def make_page(page_no: int, posts: list[Post], accounts: list[Account] | None = None,
              interactions: list[Interaction] | None = None) -> Page:
    prov = Provenance("x", "tweets/search/recent?query=%40AmazonHelp", T0, "test")
    raw = RawPayload(prov, f'{{"page": {page_no}, "ids": {[p.post_id for p in posts]}}}')
    return Page(raw=raw, cursor=Cursor("x_sample", "@AmazonHelp", {"page": page_no}), posts=posts,
                accounts=accounts or [], interactions=interactions or [])


@pytest.fixture
def con(tmp_path):
    connection = open_warehouse(tmp_path / "w.duckdb")
    yield connection
    connection.close()


def test_new_file_is_owner_only_and_migrated(tmp_path):
    path = tmp_path / "fresh.duckdb"
    con = open_warehouse(path)
    version = con.execute("SELECT max(version) FROM schema_version").fetchone()[0]
    con.close()
    assert version == LATEST_VERSION
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    # Re-opening applies nothing twice.
    con = open_warehouse(path)
    assert con.execute("SELECT count(*) FROM schema_version").fetchone()[0] == len(MIGRATIONS)
    con.close()


def test_reloading_the_same_pages_adds_no_rows(con):
    # Real tweets from the TWCS sample (AmazonHelp thread).
    posts = [
        Post("x", "1001", "115770", "@AmazonHelp my order never arrived", T0),
        Post("x", "1002", "AmazonHelp", "@115770 Sorry to hear that! Could you DM us the order details?", T0),
    ]
    accounts = [Account("x", "115770", "115770"), Account("x", "AmazonHelp", "AmazonHelp")]
    edges = [Interaction("x", "mention", "115770", "AmazonHelp", "1001", None, T0),
             Interaction("x", "reply", "AmazonHelp", "115770", "1002", "1001", T0)]
    page = make_page(1, posts, accounts, edges)
    load_pages(con, [page])
    first = table_counts(con, DATA_TABLES)
    load_pages(con, [page])
    assert table_counts(con, DATA_TABLES) == first
    assert first["posts"] == 2 and first["interactions"] == 2 and first["raw_payloads"] == 1
    assert load_cursor(con, "x_sample", "@AmazonHelp").state == {"page": 1}


def test_duplicates_inside_a_batch_merge_newest_first(con):
    richer = Account("x", "AmazonHelp", "AmazonHelp", display_name="Amazon Help", followers_count=1_200_000)
    sparse = Account("x", "AmazonHelp", "AmazonHelp")  # later seen only as a mention
    load_pages(con, [make_page(1, [], [richer, sparse])])
    row = con.execute("SELECT display_name, followers_count FROM accounts").fetchall()
    assert row == [("Amazon Help", 1_200_000)]
    # A later sparse sighting in another load keeps the stored values too.
    load_pages(con, [make_page(2, [], [Account("x", "AmazonHelp", "AmazonHelp", followers_count=1_300_000)])])
    assert con.execute("SELECT display_name, followers_count FROM accounts").fetchall() == [("Amazon Help", 1_300_000)]


def test_dedupe_last_keeps_newest():
    rows = [Post("x", "1", "a", "old"), Post("x", "1", "a", "new"), Post("x", "2", "b", "other")]
    assert [p.text for p in dedupe_last(rows, ("source", "post_id"))] == ["new", "other"]


def test_failed_load_leaves_no_rows_and_no_cursor(con):
    page = make_page(1, [Post("x", "1", "a", "hello")])
    page.posts.append(Post("x", "2", "a", None))  # type: ignore[arg-type]  # NOT NULL text violates the schema
    with pytest.raises(Exception):
        load_pages(con, [page])
    assert table_counts(con, ("posts", "raw_payloads", "cursors")) == {"posts": 0, "raw_payloads": 0, "cursors": 0}


def test_quarantine_is_idempotent(con):
    page = make_page(1, [])
    page.quarantined.append(Quarantined("rss", page.raw.raw_id, "entry has no text", "<item><title/></item>"))
    load_pages(con, [page])
    load_pages(con, [page])
    assert con.execute("SELECT reason FROM quarantine").fetchall() == [("entry has no text",)]


def test_transaction_rolls_back(con):
    with pytest.raises(RuntimeError):
        with transaction(con):
            con.execute("INSERT INTO customers VALUES ('1', 'DE', NULL, NULL, 1, 1.0, 'crm', now())")
            raise RuntimeError("boom")
    assert con.execute("SELECT count(*) FROM customers").fetchone()[0] == 0


def test_a_migration_numbered_below_the_newest_is_still_applied(tmp_path, monkeypatch):
    import warehouse.db as db
    from warehouse.schema import MIGRATIONS as REAL

    path = tmp_path / "old.duckdb"
    # A file created before migration 10 existed, but already at version 30.
    monkeypatch.setattr(db, "MIGRATIONS", [m for m in REAL if m[0] != 10])
    open_warehouse(path).close()
    monkeypatch.setattr(db, "MIGRATIONS", REAL)
    con = open_warehouse(path)
    versions = [r[0] for r in con.execute("SELECT version FROM schema_version ORDER BY version").fetchall()]
    con.close()
    assert versions == sorted(m[0] for m in REAL)


def test_source_run_attempts_add_up(con):
    from types import SimpleNamespace

    from warehouse.stages import save_source_run

    first = SimpleNamespace(requests=3, retries=0, rate_limit_waits=1, waited_seconds=3.0, skipped={})
    second = SimpleNamespace(requests=5, retries=4, rate_limit_waits=0, waited_seconds=7.5, skipped={})
    save_source_run(con, "run1", "reddit_de", "reddit", "de", T0, "failed", {"pages": 1, "posts": 25}, first, "503")
    save_source_run(con, "run1", "reddit_de", "reddit", "de", T0, "completed", {"pages": 1, "posts": 6}, second)
    row = con.execute("SELECT status, pages, posts, requests, retries, rate_limit_waits, waited_seconds, error "
                      "FROM source_runs").fetchall()
    assert row == [("completed", 2, 31, 8, 4, 1, 10.5, None)]
    coverage = con.execute("SELECT source_name, runs, posts, rate_limit_waits FROM v_source_coverage").fetchall()
    assert coverage == [("reddit_de", 1, 31, 1)]
