"""The live X connector through tweepy, with HTTP intercepted by `responses` (tweepy hard-codes api.twitter.com)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
import responses

from connectors.base import MalformedPayload, MissingCredential, RateLimited
from connectors.records import Cursor
from connectors.registry import build_connector
from connectors.x import XConnector
from resonanz.settings import Settings, SourceSpec

from http_harness import FakeClock

SEARCH = "https://api.twitter.com/2/tweets/search/recent"
FIXTURES = Path(__file__).parents[1] / "fixtures" / "x"
PAGE_1 = (FIXTURES / "search_recent_tweets.json").read_text()  # real body, meta.next_token set
PAGE_2 = (FIXTURES / "public_api_sample_v2.json").read_text()  # real tweets, last page (no next_token)


def sent_params(call: responses.Call) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlparse(call.request.url).query).items()}


def test_missing_token_gives_one_line_naming_the_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RESONANZ_X_BEARER_TOKEN", raising=False)
    spec = SourceSpec(name="x_live", connector="x", stream="Deutsche Bahn lang:de")
    with pytest.raises(MissingCredential) as caught:
        build_connector(spec, Settings(sources=[spec]))
    message = str(caught.value)
    assert "RESONANZ_X_BEARER_TOKEN" in message and "\n" not in message


@responses.activate
def test_pages_through_next_token_keeping_raw_bodies() -> None:
    responses.add(responses.GET, SEARCH, body=PAGE_1, content_type="application/json")
    responses.add(responses.GET, SEARCH, body=PAGE_2, content_type="application/json")
    pages = list(XConnector("Tweepy", "x_live", "test-token").fetch(None))

    assert [page.raw.body for page in pages] == [PAGE_1, PAGE_2]
    assert [len(page.posts) for page in pages] == [10, 20]
    first, second = (sent_params(call) for call in responses.calls)
    assert first["query"] == "Tweepy" and "next_token" not in first and "since_id" not in first
    assert "referenced_tweets.id.author_id" in first["expansions"].split(",")
    assert {"entities", "public_metrics", "referenced_tweets"} <= set(first["tweet.fields"].split(","))
    assert second["next_token"] == "b26v89c19zqg8o3fpzbn1e0ffhxjiofzw6po136rvbnul"
    assert responses.calls[0].request.headers["Authorization"] == "Bearer test-token"
    # Mid-run the cursor holds the token; at the end it holds the newest id seen, for the next run.
    assert pages[0].cursor.state == {"next_token": "b26v89c19zqg8o3fpzbn1e0ffhxjiofzw6po136rvbnul",
                                     "run_newest_id": "1578516068309794817"}
    assert pages[1].cursor.state == {"since_id": "1578516068309794817"}
    assert pages[1].cursor.source == "x_live" and pages[1].cursor.stream == "Tweepy"
    assert {e.kind for e in pages[1].interactions} == {"mention", "reply", "quote", "repost"}


@responses.activate
def test_resumes_with_stored_next_token_then_uses_since_id() -> None:
    responses.add(responses.GET, SEARCH, body=PAGE_2, content_type="application/json")
    connector = XConnector("Tweepy", "x_live", "test-token")
    stored = Cursor("x_live", "Tweepy", {"next_token": "tok-2", "run_newest_id": "1578516068309794817"})
    resumed = list(connector.fetch(stored))
    assert len(resumed) == 1 and sent_params(responses.calls[0])["next_token"] == "tok-2"
    assert resumed[0].cursor.state == {"since_id": "1578516068309794817"}

    list(connector.fetch(resumed[0].cursor))
    assert sent_params(responses.calls[1])["since_id"] == "1578516068309794817"
    assert "next_token" not in sent_params(responses.calls[1])


@responses.activate
def test_rate_limit_waits_until_reset_with_the_injected_sleep(clock: FakeClock) -> None:
    reset = int(clock.now) + 120
    responses.add(responses.GET, SEARCH, status=429, json={"title": "Too Many Requests"},
                  headers={"x-rate-limit-reset": str(reset), "x-rate-limit-remaining": "0"})
    responses.add(responses.GET, SEARCH, body=PAGE_2, content_type="application/json")
    connector = XConnector("Tweepy", "x_live", "test-token", sleep=clock.sleep, clock=clock.time)
    pages = list(connector.fetch(None))
    assert len(pages) == 1 and clock.sleeps == [121.0]
    assert connector.stats.rate_limit_waits == 1 and connector.stats.requests == 2


@responses.activate
def test_rate_limit_beyond_the_cap_is_a_named_error(clock: FakeClock) -> None:
    reset = int(clock.now) + 3600
    responses.add(responses.GET, SEARCH, status=429, json={"title": "Too Many Requests"},
                  headers={"x-rate-limit-reset": str(reset)})
    connector = XConnector("Tweepy", "x_live", "test-token", max_wait=900, sleep=clock.sleep, clock=clock.time)
    with pytest.raises(RateLimited, match=str(reset)):
        list(connector.fetch(None))
    assert clock.sleeps == []


@responses.activate
def test_server_error_is_retried_then_succeeds(clock: FakeClock) -> None:
    responses.add(responses.GET, SEARCH, status=503, json={"title": "Service Unavailable"})
    responses.add(responses.GET, SEARCH, body=PAGE_1, content_type="application/json")
    responses.add(responses.GET, SEARCH, body=PAGE_2, content_type="application/json")
    connector = XConnector("Tweepy", "x_live", "test-token", sleep=clock.sleep, clock=clock.time)
    assert [len(page.posts) for page in connector.fetch(None)] == [10, 20]
    assert clock.sleeps == [1.0] and connector.stats.retries == 1


@responses.activate
def test_body_that_is_not_json_is_kept_then_reported(clock: FakeClock) -> None:
    responses.add(responses.GET, SEARCH, body='{"data": [{"id": "1", "te', content_type="application/json")
    stored = []
    with pytest.raises(MalformedPayload):
        for page in XConnector("Tweepy", "x_live", "test-token", sleep=clock.sleep, clock=clock.time).fetch(None):
            stored.append(page)
    assert len(stored) == 1 and stored[0].raw.body == '{"data": [{"id": "1", "te'
    assert stored[0].quarantined[0].reason.startswith("malformed JSON") and stored[0].cursor.state == {}
