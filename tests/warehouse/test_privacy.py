"""Erasure leaves no trace of a person in any text column of any table, raw payloads included."""

from __future__ import annotations

import json
import re

import pytest

from warehouse.db import table_counts
from warehouse.privacy import REDACTED, erase_account, erase_customer, find_traces, scrub_body, word_pattern
from warehouse.schema import DATA_TABLES


def everything_text(con) -> str:
    """All text of all tables, for a plain substring check on top of the word-level one."""
    parts = []
    for (table,) in con.execute("SELECT table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE'").fetchall():
        parts.append(" ".join(str(r) for r in con.execute(f"SELECT * FROM {table}").fetchall()))
    return "\n".join(parts)


def test_erase_account_removes_every_trace(populated_copy):
    con = populated_copy
    # 115712: a real TWCS customer account — posts, replies to it, a CRM link, raw pages.
    handle = con.execute("SELECT handle FROM accounts WHERE account_id = '115712'").fetchall()[0][0]
    assert find_traces(con, ["115712", handle])
    assert con.execute("SELECT count(*) FROM raw_payloads WHERE body LIKE '%115712%'").fetchall()[0][0] > 0
    others_before = con.execute("SELECT count(*) FROM posts WHERE author_id <> '115712'").fetchall()[0][0]
    # Other rows that only *name* the person: an alert's message and JSON evidence, another
    # account's influence factors, a quarantined fragment.
    con.execute(
        """INSERT INTO alerts VALUES ('a1', 'negative_share', 'Sprint', 'warning', NULL, NULL,
           'Complaints led by @115712', '{"top_authors": ["115712", "sprintcare"], "115712": 3}', now())""")
    con.execute("""UPDATE influence_scores SET factors = '{"replied_by": "115712", "in_degree": 5}'
                   WHERE account_id = 'sprintcare'""")
    con.execute("INSERT INTO quarantine VALUES ('q1', 'x', NULL, 'bad date', '{\"author_id\": \"115712\"}', now())")

    report = erase_account(con, "x", "115712")

    assert find_traces(con, ["115712", handle]) == []
    assert "115712" not in everything_text(con)
    assert report.deleted["posts"] > 0 and report.rewritten["raw_payloads"] > 0
    # Other people's posts stay; where they named the person, the name is gone.
    assert con.execute("SELECT count(*) FROM posts").fetchall()[0][0] == others_before
    assert con.execute("SELECT count(*) FROM posts WHERE text LIKE ?", [f"%@{REDACTED}%"]).fetchall()[0][0] > 0
    evidence = json.loads(con.execute("SELECT evidence FROM alerts").fetchall()[0][0])
    assert evidence == {"top_authors": [REDACTED, "sprintcare"]}
    # Raw payloads are still valid JSON with the other people's tweets in them.
    for (body,) in con.execute("SELECT body FROM raw_payloads").fetchall():
        page = json.loads(body)
        assert all(t["author_id"] != "115712" for t in page["data"])
        assert page["data"]


def test_erase_customer_removes_crm_rows_and_linked_accounts(populated_copy):
    con = populated_copy
    customer, account = con.execute(
        "SELECT customer_id, account_id FROM account_customer_links WHERE status = 'auto' ORDER BY customer_id LIMIT 1"
    ).fetchall()[0]
    con.execute("INSERT INTO customer_identities VALUES (?, 'email', 'someone.private@example.org', 'Someone Private', 'test')",
                [customer])
    # Give the customer invoices and a value row even if the 15 % sample did not draw them.
    con.execute("INSERT INTO customer_invoices VALUES ('X999', ?, '2011-05-01 10:00:00', 1, 1, 10.0, 'UK', 'test', now())",
                [customer])
    report = erase_customer(con, customer)
    assert report.deleted["customers"] == 1 and report.deleted["customer_invoices"] >= 1
    assert report.deleted["accounts"] == 1
    assert find_traces(con, [customer, account, "someone.private@example.org", "Someone Private"]) == []
    with pytest.raises(KeyError):
        erase_customer(con, customer)


def test_review_links_are_dropped_but_the_account_is_kept(populated_copy):
    con = populated_copy
    customer, account = con.execute(
        "SELECT customer_id, account_id FROM account_customer_links ORDER BY customer_id LIMIT 1").fetchall()[0]
    con.execute("UPDATE account_customer_links SET status = 'review' WHERE customer_id = ?", [customer])
    erase_customer(con, customer)
    assert con.execute("SELECT count(*) FROM accounts WHERE account_id = ?", [account]).fetchall()[0][0] == 1
    assert con.execute("SELECT count(*) FROM account_customer_links WHERE customer_id = ?", [customer]).fetchall()[0][0] == 0


def test_erasing_twice_or_unknown_is_a_clear_error(populated_copy):
    erase_account(populated_copy, "x", "adobecare")
    first = table_counts(populated_copy, DATA_TABLES)
    with pytest.raises(KeyError, match="no account"):
        erase_account(populated_copy, "x", "adobecare")
    assert table_counts(populated_copy, DATA_TABLES) == first


def test_scrub_body_keeps_untouched_payloads_byte_for_byte():
    body = '{"data": [{"id": "1", "author_id": "someone", "text": "hi @other"}]}'
    assert scrub_body(body, {"nobody"}, set(), None) == body
    rss = "<rss><item><author>jane_doe</author><title>jane_doe writes</title></item></rss>"
    pattern = re.compile(word_pattern(["jane_doe"]), re.IGNORECASE)
    assert "jane_doe" not in scrub_body(rss, {"jane_doe"}, set(), pattern)
