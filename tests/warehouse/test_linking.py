"""Probabilistic account ↔ customer linking: evidence, thresholds, review band, manual decisions."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from warehouse.crm import link_accounts_by_handle
from warehouse.db import open_warehouse
from warehouse.linking import (
    account_features,
    customer_features,
    link_accounts_probabilistic,
    review_queue,
    set_link_status,
)

NOW = datetime(2026, 11, 1, tzinfo=UTC)

# Profiles as people write them (EN and DE); the CRM side as a shop would hold it.
ACCOUNTS = [
    ("a1", "anna_s_berlin", "Anna Schmidt", "Radfahrerin. Kontakt: Anna.Schmidt@example.org", "Berlin, Deutschland", None),
    ("a2", "tbaker", "Tom Baker", "tea & trains", "London, UK", "https://www.tombaker.example.com"),
    ("a3", "jonas_k", "Jonas Krüger", "Bahnfahrer aus Leidenschaft", "München", None),
    ("a4", "someone_else", "Maria Rossi", "Pizza. Roma.", "Roma", None),
    ("a5", "mike_w", "Mike W", "just a guy", "Leeds, England", None),
]
CUSTOMERS = [("c1", "Germany"), ("c2", "United Kingdom"), ("c3", "Germany"), ("c4", "United Kingdom")]
IDENTITIES = [
    ("c1", "email", "anna.schmidt@example.org", "Anna Schmidt"),
    ("c2", "web", "tombaker.example.com", "Tom Baker"),
    ("c3", "x", "jonas_k", None),
    ("c4", "x", "mike_wilson", "Mike Wilson"),
]


@pytest.fixture
def con(tmp_path):
    connection = open_warehouse(tmp_path / "w.duckdb")
    for account_id, handle, name, bio, location, url in ACCOUNTS:
        connection.execute(
            "INSERT INTO accounts (source, account_id, handle, display_name, description, location, url, loaded_at) "
            "VALUES ('x', ?, ?, ?, ?, ?, ?, ?)", [account_id, handle, name, bio, location, url, NOW])
    for i, (account_id, lang) in enumerate((("a1", "de"), ("a2", "en"), ("a3", "de"), ("a4", "it"), ("a5", "en"))):
        connection.execute("INSERT INTO posts (source, post_id, author_id, text, loaded_at) VALUES ('x', ?, ?, 'hallo', ?)",
                           [f"p{i}", account_id, NOW])
        connection.execute("INSERT INTO annotations VALUES ('x', ?, 'language', ?, 1.0, 'test', '1', ?)", [f"p{i}", lang, NOW])
    for customer_id, country in CUSTOMERS:
        connection.execute("INSERT INTO customers (customer_id, country, crm_source, loaded_at) VALUES (?, ?, 'test', ?)",
                           [customer_id, country, NOW])
    for row in IDENTITIES:
        connection.execute("INSERT INTO customer_identities VALUES (?, ?, ?, ?, 'test')", list(row))
    yield connection
    connection.close()


def links(con) -> dict[tuple[str, str], tuple[str, str, float]]:
    return {(a, c): (status, method, p) for a, c, status, method, p in con.execute(
        "SELECT account_id, customer_id, status, method, match_probability FROM account_customer_links").fetchall()}


def test_features_read_email_domain_country_and_language(con):
    features = {r["record_id"]: r for r in account_features(con).to_pylist()}
    assert features["a1"]["email"] == "anna.schmidt@example.org"
    assert features["a1"]["country"] == "Germany" and features["a1"]["language"] == "de"
    assert features["a2"]["domain"] == "tombaker.example.com" and features["a2"]["country"] == "United Kingdom"
    assert features["a3"]["country"] == "Germany"  # "München"
    assert features["a4"]["country"] is None  # "Roma" is not in the place list
    customers = {r["record_id"]: r for r in customer_features(con).to_pylist()}
    assert customers["c1"]["email"] == "anna.schmidt@example.org" and customers["c1"]["language"] == "de"
    assert customers["c3"]["handle"] == "jonask"


def test_strong_evidence_links_weak_goes_to_review_none_is_left_alone(con):
    summary = link_accounts_probabilistic(con, now=NOW)
    found = links(con)
    # e-mail in the bio + name + country + language: certain.
    assert found[("a1", "c1")][0] == "auto" and found[("a1", "c1")][2] > 0.99
    # the same handle, German location and posts for a German customer: certain enough.
    assert found[("a3", "c3")][0] == "auto"
    # website + name, UK for a UK customer: linked.
    assert found[("a2", "c2")][0] in ("auto", "review")
    # only a similar name and handle: never linked automatically.
    assert found.get(("a5", "c4"), ("none",))[0] != "auto"
    assert not any(a == "a4" for a, _ in found)
    assert summary.auto >= 2 and summary.pairs_scored >= 3
    assert all(method == "splink" for _, method, _ in found.values())


def test_manual_decisions_survive_reruns_and_stale_links_go(con):
    link_accounts_probabilistic(con, now=NOW)
    set_link_status(con, "x", "a1", "c1", "rejected")
    set_link_status(con, "x", "a3", "c3", "confirmed")
    with pytest.raises(ValueError):
        set_link_status(con, "x", "a3", "c3", "auto")
    with pytest.raises(KeyError):
        set_link_status(con, "x", "a4", "c1", "confirmed")
    # The evidence for Jonas disappears: his confirmed link still stays, as does Anna's rejection.
    con.execute("DELETE FROM customer_identities WHERE customer_id IN ('c1', 'c3')")
    summary = link_accounts_probabilistic(con, now=NOW)
    found = links(con)
    assert found[("a1", "c1")][0] == "rejected"
    assert found[("a3", "c3")][0] == "confirmed"
    assert summary.auto == 0 or ("a2", "c2") in found


def test_exact_handle_links_are_not_downgraded(con):
    link_accounts_by_handle(con, now=NOW)
    assert links(con)[("a3", "c3")] == ("auto", "exact_handle", 1.0)
    link_accounts_probabilistic(con, now=NOW)
    assert links(con)[("a3", "c3")] == ("auto", "exact_handle", 1.0)


def test_rerun_is_idempotent_and_review_queue_lists_the_band(con):
    first = link_accounts_probabilistic(con, now=NOW)
    before = links(con)
    second = link_accounts_probabilistic(con, now=NOW)
    assert links(con) == before and first == second
    queue = review_queue(con).to_pylist()
    assert [(r["account_id"], r["customer_id"]) for r in queue] == [
        k for k, v in sorted(before.items(), key=lambda kv: -kv[1][2]) if v[0] == "review"]


def test_thresholds_must_be_ordered(con):
    with pytest.raises(ValueError):
        link_accounts_probabilistic(con, auto_threshold=0.5, review_threshold=0.9)


def test_nothing_to_link_is_not_an_error(tmp_path):
    empty = open_warehouse(tmp_path / "empty.duckdb")
    summary = link_accounts_probabilistic(empty, now=NOW)
    assert (summary.pairs_scored, summary.auto, summary.review, summary.removed) == (0, 0, 0, 0)
    empty.close()
