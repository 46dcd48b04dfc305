"""The live X connector through tweepy, against real recorded bodies served over HTTP on 127.0.0.1.

tweepy hard-codes https://api.twitter.com; the connector's `api_base` sends the same requests to a
local replay server instead. Everything between tweepy and the socket is the production path:
tweepy's requests session, RequestsAdapter and the shared HttpClient.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from connectors.base import MalformedPayload, MissingCredential, RateLimited, UnsafeUrl
from connectors.http import HttpClient
from connectors.records import Cursor
from connectors.registry import build_connector
from connectors.x import XConnector
from resonanz.settings import Settings, SourceSpec

from http_harness import FakeClock, LocalServer, Reply, SeenRequest

SEARCH = "/2/tweets/search/recent"
FIXTURES = Path(__file__).parents[1] / "fixtures" / "x"
PAGE_1 = (FIXTURES / "search_recent_tweets.json").read_text()  # real body, meta.next_token set
PAGE_2 = (FIXTURES / "public_api_sample_v2.json").read_text()  # real tweets, last page (no next_token)
JSON = {"Content-Type": "application/json"}


def ok(body: str) -> Reply:
    return Reply(200, body.encode(), JSON)


def sent_params(request: SeenRequest) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlparse(request.path).query).items()}


def x(server: LocalServer, clock: FakeClock | None = None, **options: object) -> XConnector:
    clock = clock or FakeClock()
    return XConnector("Tweepy", "x_live", "test-token", sleep=clock.sleep, clock=clock.time,  # type: ignore[arg-type]
                      api_base=server.url, **options)


def test_missing_token_gives_one_line_naming_the_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RESONANZ_X_BEARER_TOKEN", raising=False)
    spec = SourceSpec(name="x_live", connector="x", stream="Deutsche Bahn lang:de")
    with pytest.raises(MissingCredential) as caught:
        build_connector(spec, Settings(sources=[spec]))
    message = str(caught.value)
    assert "RESONANZ_X_BEARER_TOKEN" in message and "\n" not in message


def test_pages_through_next_token_keeping_raw_bodies(local_server: LocalServer) -> None:
    local_server.route(SEARCH, ok(PAGE_1), ok(PAGE_2))
    pages = list(x(local_server).fetch(None))

    assert [page.raw.body for page in pages] == [PAGE_1, PAGE_2]
    assert [len(page.posts) for page in pages] == [10, 20]
    first, second = (sent_params(request) for request in local_server.requests)
    assert first["query"] == "Tweepy" and "next_token" not in first and "since_id" not in first
    assert "referenced_tweets.id.author_id" in first["expansions"].split(",")
    assert {"entities", "public_metrics", "referenced_tweets"} <= set(first["tweet.fields"].split(","))
    assert second["next_token"] == "b26v89c19zqg8o3fpzbn1e0ffhxjiofzw6po136rvbnul"
    assert local_server.requests[0].headers["authorization"] == "Bearer test-token"
    # Mid-run the cursor holds the token; at the end it holds the newest id seen, for the next run.
    assert pages[0].cursor.state == {"next_token": "b26v89c19zqg8o3fpzbn1e0ffhxjiofzw6po136rvbnul",
                                     "run_newest_id": "1578516068309794817"}
    assert pages[1].cursor.state == {"since_id": "1578516068309794817"}
    assert pages[1].cursor.source == "x_live" and pages[1].cursor.stream == "Tweepy"
    assert {e.kind for e in pages[1].interactions} == {"mention", "reply", "quote", "repost"}
    assert pages[0].raw.provenance.endpoint.startswith(f"{local_server.url}{SEARCH}?query=")


def test_resumes_with_stored_next_token_then_uses_since_id(local_server: LocalServer) -> None:
    local_server.route(SEARCH, ok(PAGE_2))
    connector = x(local_server)
    stored = Cursor("x_live", "Tweepy", {"next_token": "tok-2", "run_newest_id": "1578516068309794817"})
    resumed = list(connector.fetch(stored))
    assert len(resumed) == 1 and sent_params(local_server.requests[0])["next_token"] == "tok-2"
    assert resumed[0].cursor.state == {"since_id": "1578516068309794817"}

    list(connector.fetch(resumed[0].cursor))
    assert sent_params(local_server.requests[1])["since_id"] == "1578516068309794817"
    assert "next_token" not in sent_params(local_server.requests[1])


def test_rate_limit_waits_until_reset_with_the_injected_sleep(local_server: LocalServer, clock: FakeClock) -> None:
    reset = int(clock.now) + 120
    local_server.route(SEARCH, Reply(429, b'{"title": "Too Many Requests"}',
                                     {**JSON, "x-rate-limit-reset": str(reset), "x-rate-limit-remaining": "0"}), ok(PAGE_2))
    connector = x(local_server, clock)
    pages = list(connector.fetch(None))
    assert len(pages) == 1 and clock.sleeps == [121.0]
    assert connector.stats.rate_limit_waits == 1 and connector.stats.requests == 2


def test_rate_limit_beyond_the_cap_is_a_named_error(local_server: LocalServer, clock: FakeClock) -> None:
    reset = int(clock.now) + 3600
    local_server.route(SEARCH, Reply(429, b'{"title": "Too Many Requests"}', {**JSON, "x-rate-limit-reset": str(reset)}))
    with pytest.raises(RateLimited, match=str(reset)):
        list(x(local_server, clock, max_wait=900).fetch(None))
    assert clock.sleeps == []


def test_server_error_and_a_stalled_reply_are_retried_then_succeed(local_server: LocalServer, clock: FakeClock) -> None:
    local_server.route(SEARCH, Reply(503, b'{"title": "Service Unavailable"}', JSON),
                       Reply(200, PAGE_1.encode(), JSON, delay=3.0), ok(PAGE_1), ok(PAGE_2))
    # tweepy sends no timeout of its own; the shared client's applies (1 s here).
    connector = x(local_server, clock, timeout=1.0)
    assert [len(page.posts) for page in connector.fetch(None)] == [10, 20]
    assert clock.sleeps == [1.0, 2.0] and connector.stats.retries == 2


def test_body_that_is_not_json_is_kept_then_reported(local_server: LocalServer) -> None:
    local_server.route(SEARCH, ok('{"data": [{"id": "1", "te'))
    stored = []
    with pytest.raises(MalformedPayload):
        for page in x(local_server).fetch(None):
            stored.append(page)
    assert len(stored) == 1 and stored[0].raw.body == '{"data": [{"id": "1", "te'
    assert stored[0].quarantined[0].reason.startswith("malformed JSON") and stored[0].cursor.state == {}


def test_oversized_page_is_skipped_and_counted_keeping_the_cursor(local_server: LocalServer) -> None:
    huge = json.dumps({"data": [], "padding": "x" * 300_000})
    local_server.route(SEARCH, ok(PAGE_1), ok(huge))
    connector = x(local_server, max_bytes=100_000)
    pages = list(connector.fetch(None))  # ends cleanly: the collection goes on with the next source
    assert [len(page.posts) for page in pages] == [10]
    assert pages[-1].cursor.state["next_token"] == "b26v89c19zqg8o3fpzbn1e0ffhxjiofzw6po136rvbnul"  # retried next run
    assert connector.stats.skipped == {"download too large": 1}
    assert len(local_server.requests) == 2  # the oversized page was not asked for again


def test_a_gzip_bomb_is_measured_decoded(local_server: LocalServer) -> None:
    """60 kB on the wire, 5 MB once inflated: the limit counts what is inflated."""
    bomb = gzip.compress(b'{"data": [], "padding": "' + b" " * 5_000_000 + b'"}')
    local_server.route(SEARCH, Reply(200, bomb, {**JSON, "Content-Encoding": "gzip"}))
    connector = x(local_server, max_bytes=1_000_000)
    assert len(bomb) < 100_000 and list(connector.fetch(None)) == []
    assert connector.stats.skipped == {"download too large": 1}


def test_api_base_comes_from_the_source_options(local_server: LocalServer) -> None:
    local_server.route(SEARCH, ok(PAGE_2))
    spec = SourceSpec(name="x_live", connector="x", stream="Deutsche Bahn", options={"api_base": local_server.url})
    pages = list(build_connector(spec, Settings(sources=[spec], x_bearer_token="test-token")).fetch(None))
    assert [len(page.posts) for page in pages] == [20]


def test_tweepy_traffic_is_checked_for_private_addresses(local_server: LocalServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Production mode: the hard-coded host and any api_base go through the shared client's SSRF check."""
    monkeypatch.delenv("RESONANZ_ALLOW_PRIVATE_URLS", raising=False)
    local_server.route(SEARCH, ok(PAGE_2))
    with pytest.raises(UnsafeUrl, match=r"127\.0\.0\.1"):
        list(x(local_server).fetch(None))
    # api.twitter.com itself, answered (as a rebinding DNS would) with a loopback address: refused too.
    rebound = HttpClient(resolve=lambda host, port: ["127.0.0.1"])
    with pytest.raises(UnsafeUrl, match=r"api\.twitter\.com \(127\.0\.0\.1\)"):
        list(XConnector("Tweepy", "x_live", "test-token", http=rebound).fetch(None))
    assert local_server.requests == []
