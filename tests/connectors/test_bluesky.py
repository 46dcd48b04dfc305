"""Bluesky: atproto's Client against a local XRPC replay of lexicon-shaped responses on 127.0.0.1."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from connectors.base import MissingCredential, NotFound, RateLimited
from connectors.bluesky import BlueskyConnector, did_of
from connectors.http import MAX_BYTES
from warehouse.db import open_warehouse
from warehouse.stages import save_source_run

from http_harness import FIXTURES, FakeClock, LocalServer, Reply
from router_server import RouterServer, serve

HERE = FIXTURES / "bluesky"
JANA, RAIL, DB, FRUST = (
    "did:plc:7iza6de2dwap2sbkpav7c6c6", "did:plc:ewvi7nxzyoun6zhxrhs64oiz",
    "did:plc:4hqjfn7m6n5hno3doamuhgef", "did:plc:u5cwb2mwiv2bfq53cjufe6yn",
)
DELAY = f"at://{JANA}/app.bsky.feed.post/3lbq2x7tvfk2a"
ANSWER = f"at://{DB}/app.bsky.feed.post/3lbq3k2nwmc2v"
THANKS = f"at://{JANA}/app.bsky.feed.post/3lbq3o5hq3k2d"
QUOTE = f"at://{RAIL}/app.bsky.feed.post/3lbq3c4dyhs2k"
BOARD = f"at://{FRUST}/app.bsky.feed.post/3lbq4a7sl2c2o"


def body(name: str) -> bytes:
    return (HERE / f"{name}.json").read_bytes()


class XrpcReplay:
    """Serve the recorded-shape XRPC answers, paging searchPosts by cursor and filtering by `since`."""

    def __init__(self) -> None:
        self.rate_limited = 0
        self.failures = 0
        self.broken = False

    def __call__(self, path: str, query: dict[str, list[str]], _headers: dict[str, str]) -> Reply:
        json_type = {"Content-Type": "application/json; charset=utf-8", "ratelimit-limit": "3000",
                     "ratelimit-remaining": "2999", "ratelimit-policy": "3000;w=300"}
        if self.rate_limited:
            self.rate_limited -= 1
            return Reply(429, b'{"error":"RateLimitExceeded","message":"Rate Limit Exceeded"}',
                         {**json_type, "ratelimit-remaining": "0", "ratelimit-reset": "1700000060"})
        if self.failures:
            self.failures -= 1
            return Reply(502, b"Bad Gateway", {"Content-Type": "text/plain"})
        if self.broken:
            return Reply(200, b'{"posts": [{"uri": "at://', json_type)
        if path == "/xrpc/app.bsky.feed.searchPosts":
            recorded = body("searchPosts_page2" if query.get("cursor") == ["3"] else "searchPosts_page1")
            if "since" not in query:
                return Reply(200, recorded, json_type)
            page = json.loads(recorded)
            if "since" in query:
                page["posts"] = [p for p in page["posts"] if p["indexedAt"] >= query["since"][0]]
                page.pop("cursor", None)
            return Reply(200, json.dumps(page, ensure_ascii=False).encode(), json_type)
        if path == "/xrpc/app.bsky.feed.getAuthorFeed":
            if query.get("actor") != ["pendlerin.bsky.social"]:
                return Reply(400, b'{"error":"InvalidRequest","message":"Profile not found"}', json_type)
            return Reply(200, body("getAuthorFeed_pendlerin"), json_type)
        if path == "/xrpc/app.bsky.feed.getPostThread" and query.get("uri") == [DELAY]:
            return Reply(200, body("getPostThread_delay"), json_type)
        return Reply(404, b'{"error":"XRPCNotSupported"}', json_type)


@pytest.fixture
def xrpc() -> Iterator[tuple[XrpcReplay, RouterServer]]:
    handler = XrpcReplay()
    with serve(handler) as server:
        yield handler, server


def connector(url: str, stream: str, clock: FakeClock | None = None, **options: Any) -> BlueskyConnector:
    clock = clock or FakeClock()
    return BlueskyConnector(stream, "bsky_test", base_url=url, sleep=clock.sleep, clock=clock.time, **options)


def test_search_pages_by_cursor_with_reply_quote_and_mention_edges(xrpc: tuple[XrpcReplay, RouterServer]) -> None:
    _, server = xrpc
    sky = connector(server.url, "search:Deutsche Bahn", limit=3)
    pages = list(sky.fetch(None))
    assert [r.split("?")[0] for r in server.requests] == ["/xrpc/app.bsky.feed.searchPosts"] * 2
    assert "cursor=3" in server.requests[1] and "sort=latest" in server.requests[0]
    assert [p.raw.body.encode() for p in pages] == [body("searchPosts_page1"), body("searchPosts_page2")]
    assert [len(p.posts) for p in pages] == [2, 4]
    # The image-only post has no text: quarantined with its reason, never dropped silently.
    assert [q.reason for q in pages[0].quarantined] == ["post: post has no text (image-only or empty)"]
    edges = {(i.kind, i.src_account_id, i.dst_account_id, i.post_id, i.target_post_id) for p in pages for i in p.interactions}
    assert edges == {
        ("quote", FRUST, DB, BOARD, ANSWER),  # recordWithMedia embed
        ("reply", JANA, DB, THANKS, ANSWER),
        ("mention", JANA, DB, THANKS, None),
        ("reply", DB, JANA, ANSWER, DELAY),
        ("quote", RAIL, JANA, QUOTE, DELAY),
        ("mention", JANA, DB, DELAY, None),
    }
    posts = {p.post_id: p for page in pages for p in page.posts}
    assert posts[THANKS].conversation_id == DELAY and posts[THANKS].parent_post_id == ANSWER
    assert posts[DELAY].lang_hint == "de" and posts[QUOTE].lang_hint == "en"
    assert posts[DELAY].url == "https://bsky.app/profile/pendlerin.bsky.social/post/3lbq2x7tvfk2a"
    assert (posts[DELAY].like_count, posts[DELAY].reply_count, posts[DELAY].quote_count) == (14, 2, 1)
    handles = {a.account_id: a.handle for page in pages for a in page.accounts}
    assert handles == {JANA: "pendlerin.bsky.social", RAIL: "railfan.uk", DB: "db-presse.bsky.social", FRUST: "ticketfrust.bsky.social"}
    assert pages[0].cursor.state == {"cursor": "3", "run_newest": "2024-11-20T08:41:30.450Z"}
    assert pages[1].cursor.state == {"since": "2024-11-20T08:41:30.450Z"}


def test_resume_and_incremental_run(xrpc: tuple[XrpcReplay, RouterServer]) -> None:
    _, server = xrpc
    first = connector(server.url, "Deutsche Bahn", limit=3).fetch(None)
    stored = [next(first)]  # killed after the first page was stored
    resumed = list(connector(server.url, "Deutsche Bahn", limit=3).fetch(stored[0].cursor))
    ids = [p.post_id for page in stored + resumed for p in page.posts]
    assert len(ids) == len(set(ids)) == 6
    later = list(connector(server.url, "Deutsche Bahn", limit=3).fetch(resumed[-1].cursor))
    assert "since=2024-11-20T08%3A41%3A30.450Z" in server.requests[-1]
    assert [len(p.posts) for p in later] == [0]  # only the newest, text-less post is at or after `since`


def test_author_feed_turns_repost_reasons_into_repost_edges(xrpc: tuple[XrpcReplay, RouterServer]) -> None:
    _, server = xrpc
    pages = list(connector(server.url, "author:pendlerin.bsky.social", max_pages=1).fetch(None))
    page = pages[0]
    assert [p.post_id for p in page.posts] == [THANKS, QUOTE, DELAY]
    reposts = [i for i in page.interactions if i.kind == "repost"]
    assert [(i.src_account_id, i.dst_account_id, i.target_post_id) for i in reposts] == [(JANA, RAIL, QUOTE)]
    assert reposts[0].post_id == f"{QUOTE}#repost:{JANA}"


def test_thread_walks_replies_and_quarantines_missing_ones(xrpc: tuple[XrpcReplay, RouterServer]) -> None:
    _, server = xrpc
    pages = list(connector(server.url, f"thread:{DELAY}").fetch(None))
    assert len(pages) == 1 and pages[0].cursor.state == {"fetched": DELAY}
    assert [p.post_id for p in pages[0].posts] == [DELAY, ANSWER, THANKS]
    assert {p.conversation_id for p in pages[0].posts} == {DELAY}
    assert [q.reason for q in pages[0].quarantined] == ["thread reply is 'app.bsky.feed.defs#notFoundPost'"]


def test_rate_limit_waits_for_the_reset_header_and_5xx_is_retried(xrpc: tuple[XrpcReplay, RouterServer]) -> None:
    handler, server = xrpc
    handler.rate_limited, handler.failures = 1, 1
    clock = FakeClock(now=1_700_000_000.0)
    sky = connector(server.url, "Deutsche Bahn", clock, limit=3)
    pages = list(sky.fetch(None))
    assert clock.sleeps == [61.0, 1.0]  # reset at +60 s (plus a second), then one backoff after the 502
    assert (sky.stats.rate_limit_waits, sky.stats.retries, sky.stats.requests) == (1, 1, 4)
    assert sum(len(p.posts) for p in pages) == 6


def test_named_errors(xrpc: tuple[XrpcReplay, RouterServer]) -> None:
    handler, server = xrpc
    with pytest.raises(NotFound):
        list(connector(server.url, "author:nobody.example").fetch(None))
    handler.rate_limited = 1
    with pytest.raises(RateLimited):
        list(connector(server.url, "Deutsche Bahn", max_wait=10).fetch(None))
    handler.broken = True
    pages = []
    with pytest.raises(Exception, match="not a JSON object"):
        for page in connector(server.url, "Deutsche Bahn").fetch(None):
            pages.append(page)
    assert pages[0].quarantined[0].reason.startswith("malformed JSON") and pages[0].cursor.state == {}
    with pytest.raises(MissingCredential, match="RESONANZ_BLUESKY_APP_PASSWORD"):
        BlueskyConnector("x", "s", handle="someone.bsky.social")
    with pytest.raises(ValueError):
        BlueskyConnector("thread:https://bsky.app/x", "s")


def test_did_of_reads_the_author_from_an_at_uri() -> None:
    assert did_of(DELAY) == JANA
    assert did_of("at://pendlerin.bsky.social/app.bsky.feed.post/1") is None and did_of("https://x") is None


def test_private_appviews_are_refused_without_the_opt_in(monkeypatch: pytest.MonkeyPatch) -> None:
    from connectors.base import UnsafeUrl

    monkeypatch.delenv("RESONANZ_ALLOW_PRIVATE_URLS", raising=False)
    with pytest.raises(UnsafeUrl, match="RESONANZ_ALLOW_PRIVATE_URLS"):
        list(connector("http://127.0.0.1:9", "Deutsche Bahn").fetch(None))


def test_oversized_page_is_refused_counted_and_the_cursor_kept(local_server: LocalServer, tmp_path: Path) -> None:
    """A body over the per-download limit ends the stream cleanly; the run's report counts it as skipped."""
    huge = json.dumps({"posts": [], "cursor": "4", "padding": "x" * 300_000}).encode()
    json_type = {"Content-Type": "application/json"}
    local_server.route("/xrpc/app.bsky.feed.searchPosts", Reply(200, body("searchPosts_page1"), json_type), Reply(200, huge, json_type))
    sky = connector(local_server.url, "Deutsche Bahn", limit=3, max_bytes=100_000)
    started = datetime.now(UTC)
    pages = list(sky.fetch(None))  # no exception: the collection goes on with the next source
    assert [len(p.posts) for p in pages] == [2]
    assert pages[-1].cursor.state["cursor"] == "3"  # the next run asks for the refused page again
    assert sky.stats.skipped == {"download too large": 1}
    assert len(local_server.requests) == 2  # not retried: an oversized body will be oversized again
    with closing(open_warehouse(tmp_path / "w.duckdb")) as con:
        save_source_run(con, "run-1", "bsky_test", "bluesky", "Deutsche Bahn", started, "completed", {"pages": 1}, sky.stats)
        skipped = con.execute("SELECT skipped FROM source_runs WHERE run_id = 'run-1'").fetchone()[0]
    assert json.loads(skipped) == {"download too large": 1}


def test_the_shared_default_limit_applies_to_inflated_bytes(local_server: LocalServer) -> None:
    """A gzip bomb: ~33 kB on the wire, over the shared 32 MB limit once inflated."""
    bomb = gzip.compress(b'{"posts": [], "padding": "' + b" " * MAX_BYTES + b'"}')
    local_server.route("/xrpc/app.bsky.feed.searchPosts",
                       Reply(200, bomb, {"Content-Type": "application/json", "Content-Encoding": "gzip"}))
    sky = connector(local_server.url, "Deutsche Bahn")
    assert len(bomb) < 100_000 and list(sky.fetch(None)) == []
    assert sky.stats.skipped == {"download too large": 1} and sky.max_bytes == MAX_BYTES
