"""What the rank task reads from a real DuckDB file: intent, text hashes, account metadata, CRM person links."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from warehouse.db import open_warehouse
from warehouse.graph_store import person_links, ranking_accounts, ranking_post_signals

NOW = datetime(2024, 5, 1, tzinfo=UTC)


@pytest.fixture
def con(tmp_path):
    connection = open_warehouse(tmp_path / "w.duckdb")
    posts = [("p1", "a", "Win a FREE phone https://spam.example/1 @bob"), ("p2", "a", "win a free   phone https://spam.example/2"),
             ("p3", "b", "Ich will das neue Modell kaufen"), ("p4", "b", "Das neue Modell ist zu teuer")]
    for post_id, author, text in posts:
        connection.execute("INSERT INTO posts (source, post_id, author_id, text, loaded_at) VALUES ('x', ?, ?, ?, ?)",
                           [post_id, author, text, NOW])
    connection.execute("INSERT INTO annotations VALUES ('x', 'p3', 'intent', 'buy', 0.9, 'intent', '1', ?)", [NOW])
    connection.execute("INSERT INTO annotations VALUES ('x', 'p3', 'sentiment', 'positive', 0.8, 's', '1', ?)", [NOW])
    connection.execute("INSERT INTO accounts (source, account_id, handle, followers_count, following_count, post_count, "
                       "created_at, loaded_at) VALUES ('x', 'a', 'spammy', 3, 4900, 9000, ?, ?)", [NOW, NOW])
    for account, customer, probability, status in (("a", "c1", 0.95, "auto"), ("b", "c2", 0.7, "review"),
                                                   ("c", "c3", 0.6, "confirmed"), ("d", "c4", 0.99, "rejected")):
        connection.execute("INSERT INTO account_customer_links VALUES ('x', ?, ?, ?, 'splink', ?, ?)",
                           [account, customer, probability, status, NOW])
    yield connection
    connection.close()


def test_post_signals_carry_intent_and_a_hash_that_ignores_links_and_handles(con):
    rows = {r["post_id"]: r for r in ranking_post_signals(con).to_pylist()}
    assert rows["p3"]["intent"] == "buy" and rows["p3"]["sentiment"] == "positive" and rows["p4"]["intent"] is None
    assert rows["p1"]["text_hash"] == rows["p2"]["text_hash"] != rows["p3"]["text_hash"]
    assert rows["p1"]["author_id"] == "a" and rows["p1"]["brand_related"] is False


def test_accounts_bring_bot_metadata_and_only_firm_links_merge(con):
    account = ranking_accounts(con).to_pylist()[0]
    assert (account["following_count"], account["post_count"], account["created_at"]) == (4900, 9000, NOW)
    links = person_links(con).to_pylist()
    assert [(r["account_id"], r["person_id"]) for r in links] == [("a", "c1"), ("c", "c3")]


def test_the_rank_task_path_merges_linked_accounts_and_stores_every_account(tmp_path):
    from graph.ranking import rank_all
    from resonanz.settings import GraphSettings
    from warehouse.graph_store import ranking_interactions, save_ranking

    connection = open_warehouse(tmp_path / "r.duckdb")
    try:
        rows = [("x", f"fan{i}", "anna", f"x{i}") for i in range(4)] + [("mastodon", f"fan{i}", "anna_m", f"m{i}") for i in range(3)]
        rows += [("x", f"fan{i}", "bert", f"b{i}") for i in range(5)]
        for source, src, dst, post in rows:
            connection.execute("INSERT INTO interactions VALUES (?, 'reply', ?, ?, ?, NULL, ?, ?)", [source, src, dst, post, NOW, NOW])
        for source, account in (("x", "anna"), ("mastodon", "anna_m")):
            connection.execute("INSERT INTO account_customer_links VALUES (?, ?, 'cust-1', 0.97, 'handle', 'auto', ?)",
                               [source, account, NOW])
        result = rank_all(ranking_interactions(connection), GraphSettings(), ranking_post_signals(connection),
                          ranking_accounts(connection), identities=person_links(connection))
        stored = save_ranking(connection, result, "run-1")
        scores = dict(connection.execute("SELECT source || '/' || account_id, rank FROM influence_scores").fetchall())
        assert stored["influence_scores"] == len(scores) == 5 + 3 + 3  # fans on x and mastodon, anna twice, bert
        scores = {key.split("/")[1]: rank for key, rank in scores.items()}
        assert {scores["anna"], scores["anna_m"]} == {1, 2} and scores["bert"] == 3  # 7 fans together beat 5
        text = connection.execute("SELECT explanation FROM influence_scores WHERE account_id = 'anna'").fetchone()[0]
        assert "Counted as one person with mastodon/anna_m" in text
    finally:
        connection.close()
