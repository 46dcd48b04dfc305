"""API faults for every HTTP connector: 429 storms, 5xx bursts, timeouts, resets, cut and bad bodies, looping tokens.

The shared client, RSS, Reddit and the live X connector run against real servers on 127.0.0.1 (tweepy
hard-codes api.twitter.com; the X connector's `api_base` sends the same requests to the fault server).
Every run either finishes or stops with a named ConnectorError, and the stats say what was skipped.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from connectors.base import DownloadTooLarge, MalformedPayload, RateLimited, TransientError
from connectors.http import HttpClient, follow_next_token
from connectors.reddit import RedditConnector
from connectors.rss import RssConnector
from connectors.x import XConnector
from resonanz.settings import SAMPLE_DIR

from faultkit import FIXTURES, FakeClock, Fault, FaultServer, Reply, collect, count, warehouse
from faultkit import allow_local_servers, clock, faulty  # noqa: F401 (pytest fixtures)

JSON = {"Content-Type": "application/json"}
CRE = (SAMPLE_DIR / "feeds" / "CRE.xml").read_bytes()  # real feed, 30 entries
REDDIT_NEW = (FIXTURES / "reddit" / "askreddit_new.json").read_bytes()  # 25 posts, after = t3_48f6io
REDDIT_LAST = (FIXTURES / "reddit" / "all_search_last_page.json").read_bytes()  # 6 posts, after = null
TOKEN = json.dumps({"access_token": "tok", "token_type": "bearer", "expires_in": 3600}).encode()
X_PAGE_1 = (FIXTURES / "x" / "search_recent_tweets.json").read_text()  # 10 tweets, has next_token
X_PAGE_2 = (FIXTURES / "x" / "public_api_sample_v2.json").read_text()  # 20 tweets, last page
X_SEARCH = "/2/tweets/search/recent"


def client(clock: FakeClock, **options: object) -> HttpClient:
    return HttpClient(sleep=clock.sleep, clock=clock.time, **options)  # type: ignore[arg-type]


# --- the shared HTTP client ---------------------------------------------------------------------


def test_429_storm_gives_up_after_the_capped_waits(faulty: FaultServer, clock: FakeClock) -> None:
    url = faulty.route("/storm", Reply(429, b"", {"Retry-After": "30"}))
    with client(clock, max_rate_limit_waits=3) as http, pytest.raises(RateLimited) as caught:
        http.get_json(url)
    assert clock.sleeps == [30.0, 30.0, 30.0] and len(faulty.requests) == 4
    assert caught.value.retry_after == 30.0 and http.stats.rate_limit_waits == 3


def test_429_storm_that_clears_within_the_cap_succeeds(faulty: FaultServer, clock: FakeClock) -> None:
    reset = int(clock.now) + 9
    storm = Reply(429, b"", {"x-rate-limit-reset": str(reset)})
    url = faulty.route("/storm", storm, storm, Reply(200, b'{"ok": true}', JSON))
    with client(clock) as http:
        assert http.get_json(url)[1] == {"ok": True}
    # First wait until the reset second has passed; the second 429 arrives after it, so the floor is 0 s.
    assert clock.sleeps == [10.0, 0.0] and http.stats.rate_limit_waits == 2


def test_5xx_burst_is_retried_with_backoff(faulty: FaultServer, clock: FakeClock) -> None:
    url = faulty.route("/burst", Reply(500), Reply(502), Reply(503), Reply(504), Reply(200, b"[1]", JSON))
    with client(clock, backoff_base=1.0, max_retries=4) as http:
        assert http.get_json(url)[1] == [1]
    assert clock.sleeps == [1.0, 2.0, 4.0, 8.0] and http.stats.retries == 4


def test_endless_5xx_stops_with_transient_error(faulty: FaultServer, clock: FakeClock) -> None:
    url = faulty.route("/down", Reply(503))
    with client(clock, max_retries=3) as http, pytest.raises(TransientError, match="503 after 4 attempts"):
        http.get_json(url)
    assert len(faulty.requests) == 4


@pytest.mark.parametrize("fault", [Fault("reset"), Fault("truncate", b'{"data": [1, 2, 3'), Fault("hang", seconds=4.0)],
                         ids=["reset", "truncated", "timeout"])
def test_broken_exchange_is_retried_then_succeeds(faulty: FaultServer, clock: FakeClock, fault: Fault) -> None:
    url = faulty.route("/flaky", fault, Reply(200, b'{"ok": 1}', JSON))
    # 1 s: short enough to trip on the hang, long enough that the healthy reply never times out on a busy CI box.
    with client(clock, timeout=1.0) as http:
        assert http.get_json(url)[1] == {"ok": 1}
    assert http.stats.retries == 1 and http.stats.requests == 2


@pytest.mark.parametrize("fault", [Fault("reset"), Fault("truncate", b"<rss><channel><item>"), Fault("hang", seconds=2.0)],
                         ids=["reset", "truncated", "timeout"])
def test_persistently_broken_exchange_stops_with_transient_error(faulty: FaultServer, clock: FakeClock, fault: Fault) -> None:
    url = faulty.route("/broken", fault)
    with client(clock, timeout=0.3, max_retries=2) as http, pytest.raises(TransientError, match="after 3 attempts"):
        http.request("GET", url)
    assert len(faulty.requests) == 3


def test_malformed_and_truncated_json_raise_malformed_payload(faulty: FaultServer, clock: FakeClock) -> None:
    for body in (b'{"data": [1, 2', b"<html>502 Bad Gateway</html>", b"\xff\xfe\x00garbage", b""):
        url = faulty.route("/bad", Reply(200, body, JSON))
        with client(clock) as http, pytest.raises(MalformedPayload):
            http.get_json(url)


def test_oversized_body_is_cut_off(faulty: FaultServer, clock: FakeClock) -> None:
    url = faulty.route("/huge", Reply(200, b"x" * 200_000))
    with client(clock, max_bytes=50_000) as http, pytest.raises(DownloadTooLarge, match="larger than 50000"):
        http.request("GET", url)


def test_dripping_body_hits_the_total_time_limit(faulty: FaultServer, clock: FakeClock) -> None:
    # Every byte arrives well inside the read timeout, but the whole download never ends.
    url = faulty.route("/drip", Fault("drip", b"y" * 10_000, seconds=0.05))
    with client(clock, timeout=1.0, max_seconds=0.5) as http, pytest.raises(DownloadTooLarge, match="longer than"):
        http.request("GET", url)


def test_repeating_next_token_does_not_loop(faulty: FaultServer, clock: FakeClock) -> None:
    base = faulty.url + "/search"
    faulty.route("/search?q=a", Reply(200, json.dumps({"data": [1], "meta": {"next_token": "T1"}}).encode(), JSON))
    faulty.route("/search?q=a&next_token=T1", Reply(200, json.dumps({"data": [2], "meta": {"next_token": "T2"}}).encode(), JSON))
    faulty.route("/search?q=a&next_token=T2", Reply(200, json.dumps({"data": [3], "meta": {"next_token": "T1"}}).encode(), JSON))
    with client(clock) as http:
        pages = list(follow_next_token(http, base, {"q": "a"}))
    assert [data["data"] for _, data, _ in pages] == [[1], [2], [3]]
    assert [token for _, _, token in pages] == ["T1", "T2", None]
    assert http.stats.skipped == {"repeated pagination token": 1}


def test_vanishing_next_token_ends_the_pages(faulty: FaultServer, clock: FakeClock) -> None:
    faulty.route("/search?q=a", Reply(200, json.dumps({"data": [1], "meta": {"next_token": "T1"}}).encode(), JSON))
    faulty.route("/search?q=a&next_token=T1", Reply(200, json.dumps({"data": [2], "meta": {}}).encode(), JSON))
    with client(clock) as http:
        pages = list(follow_next_token(http, faulty.url + "/search", {"q": "a"}))
    assert [token for _, _, token in pages] == ["T1", None] and http.stats.skipped == {}


# --- RSS through the shared client, stored in a real DuckDB file ---------------------------------


def test_rss_survives_a_fault_storm_and_stores_the_feed_once(faulty: FaultServer, clock: FakeClock, tmp_path: Path) -> None:
    url = faulty.route(
        "/cre.xml", Reply(429, b"", {"Retry-After": "2"}), Reply(503), Fault("reset"),
        Fault("truncate", CRE[:5000]), Reply(200, CRE, {"ETag": '"v1"'}),
    )
    with client(clock, max_retries=4) as http, warehouse(tmp_path / "w.duckdb") as con:
        result = collect(RssConnector(url, "cre", url, http=http), con, "cre", url)
        assert result.error is None and result.pages == 1
        assert count(con, "SELECT count(*) FROM posts") == 30
        assert http.stats.rate_limit_waits == 1 and http.stats.retries == 3
        again = collect(RssConnector(url, "cre", url, http=http), con, "cre", url)  # unchanged body: nothing new
        assert again.pages == 0 and count(con, "SELECT count(*) FROM posts") == 30


def test_rss_rate_limited_run_stops_cleanly_and_resumes(faulty: FaultServer, clock: FakeClock, tmp_path: Path) -> None:
    url = faulty.route("/cre.xml", Reply(429, b"", {"Retry-After": "7200"}))
    with client(clock) as http, warehouse(tmp_path / "w.duckdb") as con:
        stopped = collect(RssConnector(url, "cre", url, http=http), con, "cre", url)
        assert isinstance(stopped.error, RateLimited) and stopped.pages == 0
        assert count(con, "SELECT count(*) FROM cursors") == 0  # nothing stored, cursor not advanced
        faulty.route("/cre.xml", Reply(200, CRE))
        resumed = collect(RssConnector(url, "cre", url, http=http), con, "cre", url)
        assert resumed.error is None and count(con, "SELECT count(*) FROM posts") == 30


def test_rss_truncated_feed_loads_what_it_can_and_quarantines_the_rest(faulty: FaultServer, clock: FakeClock, tmp_path: Path) -> None:
    cut = CRE[: len(CRE) // 2]  # a complete HTTP reply whose XML stops mid-document
    url = faulty.route("/cre.xml", Reply(200, cut))
    with client(clock) as http, warehouse(tmp_path / "w.duckdb") as con:
        result = collect(RssConnector(url, "cre", url, http=http), con, "cre", url)
        assert result.error is None
        stored = count(con, "SELECT count(*) FROM posts")
        reasons = [r[0] for r in con.execute("SELECT reason FROM quarantine").fetchall()]
    assert 0 < stored < 30
    assert any(reason.startswith("malformed feed") for reason in reasons)


# --- Reddit through the shared client --------------------------------------------------------------


def reddit(server: FaultServer, clock: FakeClock, **options: object) -> RedditConnector:
    return RedditConnector("r/askreddit", "ask", "id", "secret", http=client(clock, **options),
                           token_url=server.url + "/token", api_base=server.url)


NEW_PATH = "/r/askreddit/new?limit=100&raw_json=1"


def test_reddit_repeating_after_stops_instead_of_refetching(faulty: FaultServer, clock: FakeClock, tmp_path: Path) -> None:
    looping = json.loads(REDDIT_NEW)
    faulty.route("/token", Reply(200, TOKEN, JSON))
    faulty.route(NEW_PATH, Reply(200, REDDIT_NEW, JSON))
    faulty.route(NEW_PATH + "&after=t3_48f6io", Reply(200, json.dumps(looping).encode(), JSON))  # after again
    connector = reddit(faulty, clock)
    with warehouse(tmp_path / "w.duckdb") as con:
        result = collect(connector, con, "ask", "r/askreddit")
        assert result.error is None and result.pages == 2
        assert count(con, "SELECT count(*) FROM posts") == 25
        assert "after" not in json.loads(con.execute("SELECT state FROM cursors").fetchone()[0])
    assert connector.stats.skipped == {"repeated pagination token": 1}
    assert len([p for p in faulty.requests if p.startswith("/r/")]) == 2


def test_reddit_faults_mid_listing_lose_nothing_on_resume(faulty: FaultServer, clock: FakeClock, tmp_path: Path) -> None:
    faulty.route("/token", Reply(200, TOKEN, JSON))
    faulty.route(NEW_PATH, Reply(500), Reply(200, REDDIT_NEW, JSON))
    faulty.route(NEW_PATH + "&after=t3_48f6io", Reply(429, b"", {"Retry-After": "86400"}))
    with warehouse(tmp_path / "w.duckdb") as con:
        first = collect(reddit(faulty, clock), con, "ask", "r/askreddit")
        assert isinstance(first.error, RateLimited) and first.pages == 1
        assert json.loads(con.execute("SELECT state FROM cursors").fetchone()[0])["after"] == "t3_48f6io"
        faulty.route(NEW_PATH + "&after=t3_48f6io", Fault("reset"), Reply(200, REDDIT_LAST, JSON))
        second = collect(reddit(faulty, clock), con, "ask", "r/askreddit")
        assert second.error is None and second.pages == 1
        assert count(con, "SELECT count(*) FROM posts") == 31
        assert count(con, "SELECT count(*) - count(DISTINCT post_id) FROM posts") == 0


def test_reddit_malformed_listing_is_kept_and_reported(faulty: FaultServer, clock: FakeClock, tmp_path: Path) -> None:
    faulty.route("/token", Reply(200, TOKEN, JSON))
    faulty.route(NEW_PATH, Reply(200, b'{"kind": "Listing", "data": {"children": [', JSON))
    connector = reddit(faulty, clock)
    with warehouse(tmp_path / "w.duckdb") as con:
        result = collect(connector, con, "ask", "r/askreddit")
        assert isinstance(result.error, MalformedPayload)
        assert count(con, "SELECT count(*) FROM quarantine WHERE reason LIKE 'not a Reddit listing%'") == 1
        assert count(con, "SELECT count(*) FROM raw_payloads") == 1  # the body is kept
    assert connector.stats.skipped == {"malformed body": 1}


# --- X live through tweepy (host hard-coded; `api_base` sends it to the fault server) -------------


def x_connector(server: FaultServer, clock: FakeClock, **options: object) -> XConnector:
    return XConnector("bahn", "x_live", "test-token", sleep=clock.sleep, clock=clock.time,  # type: ignore[arg-type]
                      api_base=server.url, **options)


def page_with_token(body: str, token: str | None) -> str:
    payload = json.loads(body)
    payload.setdefault("meta", {}).pop("next_token", None)
    if token:
        payload["meta"]["next_token"] = token
    return json.dumps(payload)


def x_ok(body: str) -> Reply:
    return Reply(200, body.encode(), JSON)


def x_429(reset: str) -> Reply:
    return Reply(429, b'{"title": "Too Many Requests"}', {**JSON, "x-rate-limit-reset": reset})


def test_x_repeating_next_token_ends_the_run(faulty: FaultServer, clock: FakeClock, tmp_path: Path) -> None:
    looping = page_with_token(X_PAGE_1, "SAME")
    faulty.route(X_SEARCH, x_ok(looping), x_ok(looping), x_ok(X_PAGE_2))  # the third is never reached
    connector = x_connector(faulty, clock)
    with warehouse(tmp_path / "w.duckdb") as con:
        result = collect(connector, con, "x_live", "bahn")
        assert result.error is None and result.pages == 2
        state = json.loads(con.execute("SELECT state FROM cursors").fetchone()[0])
    assert len(faulty.requests) == 2
    assert connector.stats.skipped == {"repeated pagination token": 1}
    assert set(state) == {"since_id"}  # the run closed; the next one asks only for newer posts


def test_x_storm_burst_reset_and_timeout_then_success(faulty: FaultServer, clock: FakeClock, tmp_path: Path) -> None:
    reset = str(int(clock.now) + 60)
    faulty.route(X_SEARCH, x_429(reset), Reply(503, b'{"title": "Service Unavailable"}', JSON), Fault("reset"),
                 Fault("hang", seconds=3.0), x_ok(X_PAGE_1), x_ok(X_PAGE_2))
    connector = x_connector(faulty, clock, max_retries=3, timeout=1.0)
    with warehouse(tmp_path / "w.duckdb") as con:
        result = collect(connector, con, "x_live", "bahn")
        assert result.error is None and result.pages == 2
        assert count(con, "SELECT count(*) FROM posts WHERE source = 'x'") == 30
    assert clock.sleeps == [61.0, 1.0, 2.0, 4.0]
    assert connector.stats.rate_limit_waits == 1 and connector.stats.retries == 3


def test_x_429_storm_stops_cleanly_and_the_cursor_resumes(faulty: FaultServer, clock: FakeClock, tmp_path: Path) -> None:
    storm = x_429(str(int(clock.now) + 10))
    faulty.route(X_SEARCH, x_ok(X_PAGE_1), storm, storm, storm, storm)
    with warehouse(tmp_path / "w.duckdb") as con:
        first = collect(x_connector(faulty, clock, max_retries=3), con, "x_live", "bahn")
        assert isinstance(first.error, RateLimited) and first.pages == 1
        faulty.route(X_SEARCH, x_ok(X_PAGE_2))
        second = collect(x_connector(faulty, clock), con, "x_live", "bahn")
        assert second.error is None and second.pages == 1
        assert count(con, "SELECT count(*) FROM posts WHERE source = 'x'") == 30
    assert "next_token=b26v89c19zqg8o3fpzbn1e0ffhxjiofzw6po136rvbnul" in faulty.requests[-1]


def test_x_truncated_body_is_quarantined_and_the_cursor_stays(faulty: FaultServer, clock: FakeClock, tmp_path: Path) -> None:
    faulty.route(X_SEARCH, x_ok(X_PAGE_1), x_ok(X_PAGE_2[: len(X_PAGE_2) // 3]))
    connector = x_connector(faulty, clock)
    with warehouse(tmp_path / "w.duckdb") as con:
        result = collect(connector, con, "x_live", "bahn")
        # The cut page is stored (raw body + quarantine) with the old cursor, then the run reports the error.
        assert isinstance(result.error, MalformedPayload) and result.pages == 2
        assert count(con, "SELECT count(*) FROM quarantine WHERE reason LIKE 'malformed JSON%'") == 1
        assert count(con, "SELECT count(*) FROM raw_payloads") == 2
        state = json.loads(con.execute("SELECT state FROM cursors").fetchone()[0])
    assert state["next_token"] == "b26v89c19zqg8o3fpzbn1e0ffhxjiofzw6po136rvbnul"  # retry fetches the cut page again
    assert connector.stats.skipped == {"malformed body": 1}


def test_x_vanishing_next_token_closes_the_run(faulty: FaultServer, clock: FakeClock, tmp_path: Path) -> None:
    faulty.route(X_SEARCH, x_ok(page_with_token(X_PAGE_1, None)))
    with warehouse(tmp_path / "w.duckdb") as con:
        result = collect(x_connector(faulty, clock), con, "x_live", "bahn")
        assert result.error is None and result.pages == 1
        assert json.loads(con.execute("SELECT state FROM cursors").fetchone()[0]) == {"since_id": "1578516068309794817"}


def test_x_requests_carry_a_timeout_and_a_size_limit(faulty: FaultServer, clock: FakeClock, tmp_path: Path) -> None:
    """tweepy sends without a timeout and reads any size; the shared client under it adds both."""
    faulty.route(X_SEARCH, Fault("hang", seconds=3.0))
    with pytest.raises(TransientError, match="after 1 attempts"):
        list(x_connector(faulty, clock, timeout=0.5, max_retries=0).fetch(None))
    faulty.route(X_SEARCH, x_ok(X_PAGE_1), x_ok("x" * 300_000))
    connector = x_connector(faulty, clock, max_bytes=100_000)
    with warehouse(tmp_path / "w.duckdb") as con:
        result = collect(connector, con, "x_live", "bahn")
        # Refused, counted and not retried; the run ends cleanly with the cursor at the stored page.
        assert result.error is None and result.pages == 1
        assert "next_token" in json.loads(con.execute("SELECT state FROM cursors").fetchone()[0])
    assert connector.stats.skipped == {"download too large": 1}
    assert len(faulty.requests) == 3


def test_x_body_cut_off_mid_transfer_is_retried(faulty: FaultServer, clock: FakeClock) -> None:
    faulty.route(X_SEARCH, Fault("truncate", X_PAGE_2.encode()[:5000]), x_ok(X_PAGE_2))
    connector = x_connector(faulty, clock)
    assert [len(p.posts) for p in connector.fetch(None)] == [20]
    assert connector.stats.retries == 1
