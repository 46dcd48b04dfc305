"""The shared HTTP client against a real server on 127.0.0.1: paging, rate limits, retries, timeouts, bad JSON."""

from __future__ import annotations

import json

import pytest

from connectors.base import MalformedPayload, NotFound, RateLimited, TransientError
from connectors.http import HttpClient, follow_next_token

from http_harness import FakeClock, LocalServer, Reply


def client_for(clock: FakeClock, **options: object) -> HttpClient:
    return HttpClient(sleep=clock.sleep, clock=clock.time, **options)  # type: ignore[arg-type]


def json_reply(body: object, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, json.dumps(body).encode(), {"Content-Type": "application/json", **(headers or {})})


def test_follows_next_token_across_three_pages(local_server: LocalServer, clock: FakeClock) -> None:
    url = local_server.route("/2/tweets/search/recent?query=bahn", json_reply({"data": [{"id": "1"}], "meta": {"next_token": "A"}}))
    local_server.route("/2/tweets/search/recent?query=bahn&next_token=A", json_reply({"data": [{"id": "2"}], "meta": {"next_token": "B"}}))
    local_server.route("/2/tweets/search/recent?query=bahn&next_token=B", json_reply({"data": [{"id": "3"}], "meta": {}}))
    with client_for(clock) as client:
        pages = list(follow_next_token(client, url.split("?")[0], {"query": "bahn"}))
    assert [data["data"][0]["id"] for _, data, _ in pages] == ["1", "2", "3"]
    assert [token for _, _, token in pages] == ["A", "B", None]
    assert client.stats.requests == 3 and clock.sleeps == []


def test_429_waits_retry_after_seconds(local_server: LocalServer, clock: FakeClock) -> None:
    url = local_server.route("/limited", Reply(429, b"slow down", {"Retry-After": "7"}), json_reply({"ok": True}))
    with client_for(clock) as client:
        _, data = client.get_json(url)
    assert data == {"ok": True}
    assert clock.sleeps == [7.0]
    assert client.stats.rate_limit_waits == 1 and client.stats.waited_seconds == 7.0


def test_429_waits_until_x_rate_limit_reset(local_server: LocalServer, clock: FakeClock) -> None:
    reset = int(clock.now) + 120
    url = local_server.route(
        "/limited", Reply(429, b"{}", {"x-rate-limit-reset": str(reset), "x-rate-limit-remaining": "0"}), json_reply([1])
    )
    with client_for(clock) as client:
        client.get_json(url)
    assert clock.sleeps == [121.0]  # until the reset second has passed


def test_429_longer_than_the_cap_raises_rate_limited(local_server: LocalServer, clock: FakeClock) -> None:
    url = local_server.route("/limited", Reply(429, b"", {"Retry-After": "3600"}))
    with client_for(clock, max_wait=600) as client, pytest.raises(RateLimited) as caught:
        client.get_json(url)
    assert caught.value.retry_after == 3600.0 and clock.sleeps == []


def test_5xx_then_success_backs_off_exponentially(local_server: LocalServer, clock: FakeClock) -> None:
    url = local_server.route("/flaky", Reply(503), Reply(502), json_reply({"ok": 1}))
    with client_for(clock, backoff_base=0.5) as client:
        _, data = client.get_json(url)
    assert data == {"ok": 1}
    assert clock.sleeps == [0.5, 1.0]
    assert client.stats.retries == 2 and client.stats.requests == 3


def test_persistent_5xx_raises_transient_error(local_server: LocalServer, clock: FakeClock) -> None:
    url = local_server.route("/down", Reply(500))
    with client_for(clock, max_retries=2) as client, pytest.raises(TransientError, match="500 after 3 attempts"):
        client.get_json(url)


def test_timeout_is_retried_then_succeeds(local_server: LocalServer, clock: FakeClock) -> None:
    url = local_server.route("/slow", Reply(200, b"{}", delay=2.0), json_reply({"fast": True}))
    with client_for(clock, timeout=0.3) as client:
        _, data = client.get_json(url)
    assert data == {"fast": True}
    assert client.stats.retries == 1 and len(clock.sleeps) == 1


def test_malformed_json_raises_malformed_payload(local_server: LocalServer, clock: FakeClock) -> None:
    url = local_server.route("/broken", Reply(200, b'{"data": [', {"Content-Type": "application/json"}))
    with client_for(clock) as client, pytest.raises(MalformedPayload) as caught:
        client.get_json(url)
    assert caught.value.response.text == '{"data": ['  # the body is still there to keep


def test_404_raises_not_found(local_server: LocalServer, clock: FakeClock) -> None:
    with client_for(clock) as client, pytest.raises(NotFound):
        client.get_json(local_server.url + "/nothing-here")


def test_conditional_get_sends_validators_and_returns_none_on_304(local_server: LocalServer, clock: FakeClock) -> None:
    url = local_server.route("/feed.xml", Reply(304))
    with client_for(clock) as client:
        assert client.conditional_get(url, etag='"v1"', last_modified="Tue, 24 Nov 2026 01:00:00 GMT") is None
    seen = local_server.requests[-1].headers
    assert seen["if-none-match"] == '"v1"' and seen["if-modified-since"] == "Tue, 24 Nov 2026 01:00:00 GMT"
    assert client.stats.not_modified == 1
