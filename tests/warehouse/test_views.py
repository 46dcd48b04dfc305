"""Analyst views: documented columns, consistent counts, rejected links never count."""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb
import pytest

from warehouse.views import VIEW_COLUMNS, describe_views


def scalar(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None):
    return con.execute(sql, params or []).fetchall()[0][0]


def test_every_view_column_is_documented(populated):
    described = describe_views(populated)
    for view, columns in described.items():
        assert [name for name, _, _ in columns] == list(VIEW_COLUMNS[view]), view
        assert all(meaning for _, _, meaning in columns), view


def test_daily_views_add_up_to_the_tables(populated):
    assert scalar(populated, "SELECT sum(n_posts) FROM v_sentiment_daily") == scalar(populated, "SELECT count(*) FROM posts")
    assert scalar(populated, "SELECT sum(n_mentions) FROM v_brand_mentions_daily") == scalar(
        populated, "SELECT count(*) FROM brand_mentions")
    # Both languages of the samples are there, with sentiment labels.
    langs = {r[0] for r in populated.execute("SELECT language FROM v_sentiment_daily WHERE n_posts > n_unlabelled").fetchall()}
    assert {"de", "en"} <= langs


def test_share_of_voice_sums_to_one_per_day_and_leaves_out_products(populated):
    sums = populated.execute("SELECT day, sum(share_of_voice) FROM v_share_of_voice GROUP BY day").fetchall()
    assert sums and all(s == pytest.approx(1.0) for _, s in sums)
    assert scalar(populated, "SELECT count(*) FROM v_share_of_voice WHERE brand_kind = 'product'") == 0


def test_top_influencers_show_only_the_newest_ranking(populated):
    as_ofs = populated.execute("SELECT DISTINCT as_of FROM influence_scores").fetchall()
    assert len(as_ofs) == 2  # the fixture stores an older and a newer ranking
    shown = populated.execute("SELECT DISTINCT as_of FROM v_top_influencers").fetchall()
    assert shown == [(max(a[0] for a in as_ofs),)]
    assert scalar(populated, "SELECT count(*) FROM v_top_influencers WHERE explanation IS NULL OR explanation = ''") == 0


def test_days_are_utc_whatever_the_session_time_zone(populated):
    populated.execute("SET TimeZone = 'America/Los_Angeles'")
    late = populated.execute(
        "SELECT day, created_at FROM v_posts_enriched WHERE hour(timezone('UTC', created_at)) < 6 LIMIT 1").fetchall()
    assert late
    day, created = late[0]
    assert day == created.astimezone(UTC).date()


def test_rejected_links_do_not_count(populated_copy):
    con = populated_copy
    customer, source, account = con.execute(
        "SELECT customer_id, source, account_id FROM v_customer_social_profile ORDER BY n_posts DESC LIMIT 1").fetchall()[0]
    before_timeline = scalar(con, "SELECT count(*) FROM v_customer_timeline WHERE customer_id = ? AND channel <> 'shop'", [customer])
    assert before_timeline > 0
    con.execute("UPDATE account_customer_links SET status = 'rejected' WHERE customer_id = ? AND account_id = ?",
                [customer, account])
    for view in ("v_customer_accounts", "v_customer_social_profile"):
        assert scalar(con, f"SELECT count(*) FROM {view} WHERE customer_id = ? AND account_id = ?", [customer, account]) == 0
    assert scalar(con, "SELECT count(*) FROM v_customer_timeline WHERE customer_id = ? AND channel <> 'shop'", [customer]) == 0
    assert scalar(con, "SELECT coalesce(max(n_linked_accounts), 0) FROM v_customer_portfolio WHERE customer_id = ?",
                  [customer]) == 0


def test_timeline_joins_shop_and_social_channels(populated):
    channels = populated.execute(
        """
        SELECT customer_id, list(DISTINCT channel ORDER BY channel)
        FROM v_customer_timeline GROUP BY customer_id HAVING count(DISTINCT channel) > 1
        """
    ).fetchall()
    assert channels and all("shop" in chans and "x" in chans for _, chans in channels)
    events = {r[0] for r in populated.execute("SELECT DISTINCT event FROM v_customer_timeline").fetchall()}
    assert {"purchase", "cancellation", "post"} <= events
    assert any(e.startswith("received_") for e in events)


def test_portfolio_flags(populated_copy):
    con = populated_copy
    newest = scalar(con, "SELECT max(created_at) FROM posts")
    # A valuable customer (class A) whose linked account posted negatively in the last 30 days,
    # and a lapsed one ('lost') who is still posting: only their own rows are flagged.
    valuable = scalar(con, "SELECT customer_id FROM customer_value WHERE abc_class = 'A' ORDER BY monetary DESC LIMIT 1")
    lapsed = scalar(con, "SELECT customer_id FROM customer_value WHERE rfm_segment = 'lost' ORDER BY customer_id LIMIT 1")
    recent = newest.astimezone(UTC).replace(microsecond=0)
    now = datetime(2026, 11, 1, tzinfo=UTC)
    for customer, account, text, label in (
        (valuable, "acct_valuable", "@DB_Bahn schon wieder 2 Stunden Verspätung, unfassbar", "negative"),
        (lapsed, "acct_lapsed", "@AmazonHelp thanks, that sorted it", "positive"),
    ):
        con.execute("INSERT INTO accounts (source, account_id, handle, loaded_at) VALUES ('x', ?, ?, ?)", [account, account, now])
        con.execute("INSERT INTO posts (source, post_id, author_id, text, created_at, loaded_at) VALUES ('x', ?, ?, ?, ?, ?)",
                    [f"p_{account}", account, text, recent, now])
        con.execute("INSERT INTO annotations VALUES ('x', ?, 'sentiment', ?, 0.9, 'test', '1', ?)", [f"p_{account}", label, now])
        con.execute("INSERT INTO account_customer_links VALUES ('x', ?, ?, 1.0, 'exact_handle', 'auto', ?)",
                    [account, customer, now])
    flags = dict(((r[0], (r[1], r[2])) for r in con.execute(
        "SELECT customer_id, retention_flag, winback_flag FROM v_customer_portfolio WHERE retention_flag OR winback_flag"
    ).fetchall()))
    assert flags.get(valuable) == (True, False)
    assert flags.get(lapsed) == (False, True)
    # A 'review' link is too uncertain to raise a flag.
    con.execute("UPDATE account_customer_links SET status = 'review' WHERE account_id = 'acct_valuable'")
    assert scalar(con, "SELECT retention_flag FROM v_customer_portfolio WHERE customer_id = ?", [valuable]) is False
