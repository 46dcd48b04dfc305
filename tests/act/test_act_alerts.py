"""Alert rules over the real EN (TWCS, Oct 2017) and DE (GermEval 2017, 2015-16) fixture posts."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import duckdb
import pytest

from act.alerts import Alert, crisis_pattern, evaluate_alerts
from resonanz.settings import AlertSettings, Brand

NEWEST = datetime(2017, 10, 31, 23, 32, 26, tzinfo=UTC)
DE_START, DE_END = datetime(2015, 5, 1, tzinfo=UTC), datetime(2016, 12, 31, tzinfo=UTC)
QUIET = dict(negative_share_threshold=0.99, min_posts=10_000, crisis_terms=[])


def _by(alerts: list[Alert], rule: str) -> dict[str, Alert]:
    return {a.subject: a for a in alerts if a.rule == rule}


def _negative_share(con: duckdb.DuckDBPyConnection, brand: str, start: datetime, end: datetime) -> tuple[int, int]:
    """Count (rated, negative) posts mentioning a brand, straight from the tables."""
    row = con.execute(
        """
        SELECT count(DISTINCT p.post_id), count(DISTINCT p.post_id) FILTER (s.label = 'negative')
        FROM posts p
        JOIN brand_mentions m ON m.source = p.source AND m.post_id = p.post_id AND m.brand = ?
        JOIN annotations s ON s.source = p.source AND s.post_id = p.post_id AND s.task = 'sentiment'
        WHERE p.created_at BETWEEN ? AND ?
        """,
        [brand, start, end],
    ).fetchone()
    return int(row[0]), int(row[1])


def test_default_window_is_the_last_seven_days_of_data(con: duckdb.DuckDBPyConnection, brands: list[Brand]) -> None:
    alerts = evaluate_alerts(con, AlertSettings(negative_share_threshold=0.3, min_posts=5), brands)
    windowed = [a for a in alerts if a.rule in ("negative_share", "crisis_terms", "influencer_negative")]
    assert windowed
    for alert in windowed:
        assert alert.window_end == NEWEST
        assert alert.window_start == NEWEST - timedelta(days=7)


def test_negative_share_fires_above_threshold_and_stays_quiet_below(
    con: duckdb.DuckDBPyConnection, brands: list[Brand]
) -> None:
    # German gold labels: 14 of 31 Deutsche Bahn posts are negative (45%), past the default 40%.
    rated, negative = _negative_share(con, "Deutsche Bahn", DE_START, DE_END)
    assert (rated, negative) == (31, 14)
    fired = _by(evaluate_alerts(con, AlertSettings(), brands, DE_START, DE_END), "negative_share")
    assert set(fired) == {"Deutsche Bahn"}
    alert = fired["Deutsche Bahn"]
    assert alert.evidence["rated_posts"] == 31 and alert.evidence["negative_posts"] == 14
    assert len(alert.evidence["post_ids"]) == 14 and alert.severity == "info"  # 45% is just past 40%

    # Just above the real share: quiet. Enough posts but too few for min_posts: quiet.
    above = AlertSettings(negative_share_threshold=negative / rated + 0.01, min_posts=20)
    assert not _by(evaluate_alerts(con, above, brands, DE_START, DE_END), "negative_share")
    too_few = AlertSettings(negative_share_threshold=0.4, min_posts=rated + 1)
    assert not _by(evaluate_alerts(con, too_few, brands, DE_START, DE_END), "negative_share")


def test_negative_share_severity_grows_with_distance_past_threshold(
    con: duckdb.DuckDBPyConnection, brands: list[Brand]
) -> None:
    def severity(threshold: float) -> str:
        settings = AlertSettings(negative_share_threshold=threshold, min_posts=20)
        return _by(evaluate_alerts(con, settings, brands, DE_START, DE_END), "negative_share")["Deutsche Bahn"].severity

    # share 14/31 = 0.4516; excess over the headroom (1 - t): <0.2 info, <0.4 warning, else critical
    assert severity(0.40) == "info"
    assert severity(0.30) == "warning"
    assert severity(0.05) == "critical"


def test_negative_share_on_english_posts_ignores_competitors(
    con: duckdb.DuckDBPyConnection, brands: list[Brand]
) -> None:
    # Default window (Oct 2017, English): Amazon 3 of 8 negative (38%), PlayStation 1 of 4 (a competitor).
    assert _negative_share(con, "Amazon", NEWEST - timedelta(days=7), NEWEST) == (8, 3)
    settings = AlertSettings(negative_share_threshold=0.2, min_posts=4)
    fired = _by(evaluate_alerts(con, settings, brands), "negative_share")
    assert "Amazon" in fired and "Apple" not in fired  # Apple: 1 of 12
    assert "PlayStation" not in fired
    assert not _by(evaluate_alerts(con, AlertSettings(negative_share_threshold=0.38, min_posts=4), brands),
                   "negative_share")


@pytest.mark.parametrize(
    ("term", "window", "subject", "posts"),
    [
        ("Streik", (DE_START, DE_END), "Deutsche Bahn", 6),  # German rail strike, May 2015
        ("streik", (DE_START, DE_END), "Deutsche Bahn", 6),  # case-insensitive
        ("Chaos", (DE_START, DE_END), "Deutsche Bahn", 3),
        ("outage", (None, None), "Cox", 2),  # English: internet outage reports to @CoxHelp
    ],
)
def test_crisis_terms_fire_in_english_and_german(
    con: duckdb.DuckDBPyConnection, brands: list[Brand], term: str,
    window: tuple[datetime | None, datetime | None], subject: str, posts: int,
) -> None:
    settings = AlertSettings(**{**QUIET, "crisis_terms": [term]})
    fired = _by(evaluate_alerts(con, settings, brands, *window), "crisis_terms")
    assert subject in fired
    alert = fired[subject]
    assert alert.evidence["posts"] == len(alert.evidence["post_ids"]) == posts
    texts = con.execute(
        "SELECT text FROM posts WHERE list_contains(?, post_id)", [alert.evidence["post_ids"]]
    ).fetchall()
    assert all(crisis_pattern(term).search(t) for (t,) in texts)


def test_crisis_terms_match_whole_words_only(con: duckdb.DuckDBPyConnection, brands: list[Brand]) -> None:
    # "hack" is inside "hacked", "Strei" inside "Streik": neither is a whole word in any post.
    settings = AlertSettings(**{**QUIET, "crisis_terms": ["hack", "Strei", "Rückruf", "data breach"]})
    assert not _by(evaluate_alerts(con, settings, brands, DE_START, NEWEST), "crisis_terms")
    assert crisis_pattern("Rückruf").search("Großer RÜCKRUF bei der Bahn!")
    assert not crisis_pattern("Rückruf").search("Rückrufaktion")
    assert crisis_pattern("data breach").search("Another Data Breach, again.")


def test_crisis_posts_without_a_tracked_brand_are_reported_as_info(
    con: duckdb.DuckDBPyConnection, brands: list[Brand]
) -> None:
    settings = AlertSettings(**{**QUIET, "crisis_terms": ["hacked"]})
    fired = _by(evaluate_alerts(con, settings, brands), "crisis_terms")
    assert set(fired) == {"untracked"}  # @hulu_support and @British_Airways are not tracked
    assert fired["untracked"].severity == "info" and fired["untracked"].evidence["posts"] == 2


def test_top_influencer_negative_about_own_brand(con: duckdb.DuckDBPyConnection, brands: list[Brand]) -> None:
    fired = _by(evaluate_alerts(con, AlertSettings(**QUIET), brands), "influencer_negative")
    # Rank 3 (115855) on Apple, rank 4 (115834) on Amazon; rank 5 (115745) is negative only
    # about PlayStation, a competitor, and stays quiet.
    assert set(fired) == {"x:@115855", "x:@115834"}
    assert fired["x:@115855"].severity == "critical" and fired["x:@115855"].evidence["brands"] == ["Apple"]
    assert fired["x:@115834"].severity == "warning"
    assert sorted(fired["x:@115834"].evidence["post_ids"]) == ["640", "643"]

    # The same account drops out of the top 10 in a newer ranking: no alert.
    con.execute(
        "INSERT INTO influence_scores (as_of, source, account_id, rank, score, explanation, run_id)"
        " SELECT as_of + INTERVAL 1 DAY, source, account_id,"
        "        CASE account_id WHEN '115855' THEN 11 WHEN '115820' THEN 3 ELSE rank END,"
        "        score, explanation, 'newer' FROM influence_scores WHERE run_id = 'fixture-latest'"
    )
    fired = _by(evaluate_alerts(con, AlertSettings(**QUIET), brands), "influencer_negative")
    assert set(fired) == {"x:@115834"}


def test_alert_ids_are_stable_and_rows_fit_the_alerts_table(
    con: duckdb.DuckDBPyConnection, brands: list[Brand]
) -> None:
    settings = AlertSettings(crisis_terms=["Streik", "Chaos"])
    first = evaluate_alerts(con, settings, brands, DE_START, DE_END)
    second = evaluate_alerts(con, settings, brands, DE_START, DE_END)
    assert len(first) >= 3
    assert [a.alert_id for a in first] == [a.alert_id for a in second]
    assert len({a.alert_id for a in first}) == len(first)
    assert {a.severity for a in first} <= {"info", "warning", "critical"}
    # A different window is a different firing for the windowed rules; the rules keyed on their
    # evidence (the same posts, the same ranking) must keep their id so they never fire twice.
    windowed = ("negative_share", "crisis_terms", "influencer_negative")
    shifted = evaluate_alerts(con, settings, brands, DE_START, DE_END + timedelta(days=1))
    assert not {a.alert_id for a in shifted if a.rule in windowed} & {a.alert_id for a in first}
    keyed = {a.alert_id for a in first if a.rule in ("rising_influencer", "influencer_mention", "customer_negative")}
    assert keyed <= {a.alert_id for a in shifted}

    # The flow stores the rows; storing a re-evaluation adds nothing.
    columns = [r[0] for r in con.execute("DESCRIBE alerts").fetchall()]
    for alerts in (first, second):
        for alert in alerts:
            row = alert.as_row()
            assert list(row) == columns
            con.execute(f"INSERT OR IGNORE INTO alerts VALUES ({', '.join('?' * len(columns))})", list(row.values()))
    assert con.execute("SELECT count(*) FROM alerts").fetchone()[0] == len(first)
    stored = json.loads(con.execute("SELECT evidence FROM alerts WHERE rule = 'crisis_terms'").fetchone()[0])
    assert stored["terms"] == {"Streik": 6, "Chaos": 3}


def test_no_posts_no_alerts(tmp_path, brands: list[Brand]) -> None:  # type: ignore[no-untyped-def]
    from warehouse.db import open_warehouse

    con = open_warehouse(tmp_path / "empty.duckdb")
    assert evaluate_alerts(con, AlertSettings(crisis_terms=["recall"]), brands) == []
    con.close()
