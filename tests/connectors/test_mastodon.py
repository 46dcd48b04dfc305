"""Mastodon: Mastodon.py against a local replay of real recorded statuses, paged by max_id with Link headers."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest

from connectors.base import RateLimited
from connectors.mastodon import MastodonConnector, parse_mastodon_page, parse_stream
from connectors.records import Cursor, Provenance

from http_harness import FIXTURES, FakeClock, Reply
from router_server import RouterServer, serve

HERE = FIXTURES / "mastodon"


def recorded(name: str) -> Any:
    return json.loads((HERE / f"{name}.json").read_text(encoding="utf-8"))["body"]


def cross_account_boost() -> dict[str, Any]:
    """The recorded boost is a self-boost; re-attribute it to the recorded admin account (see PROVENANCE)."""
    boost = copy.deepcopy(recorded("test_status_reblogged_by__01"))
    boost["account"] = copy.deepcopy(recorded("test_status_reply__02")["account"])
    return boost


def pool() -> list[dict[str, Any]]:
    """Real statuses from the cassettes: public timeline, a hashtag toot, a reply pair and a boost."""
    statuses = recorded("test_public_tl__02") + recorded("test_hashtag_tl__02")
    statuses += [recorded("test_status_reply__00"), recorded("test_status_reply__02"), cross_account_boost()]
    return sorted(statuses, key=lambda s: int(s["id"]), reverse=True)


class MastodonReplay:
    """Answer the timeline, lookup, status and context endpoints from a pool of recorded statuses."""

    def __init__(self, statuses: list[dict[str, Any]]) -> None:
        self.statuses = statuses
        self.by_id = {s["id"]: s for s in statuses}
        self.base = ""
        self.rate_limited: list[str] = []  # paths answered 429 once, then normally
        self.remaining: dict[str, str] = {}  # path -> X-RateLimit-Remaining to send
        self.broken: set[str] = set()
        self.failures: dict[str, int] = {}  # path -> number of 503s before success
        self.login_required = False

    def headers(self, path: str) -> dict[str, str]:
        return {
            "Content-Type": "application/json; charset=utf-8",
            "X-RateLimit-Limit": "300",
            "X-RateLimit-Remaining": self.remaining.pop(path, "299"),
            "X-RateLimit-Reset": "2023-11-14T22:15:00.000Z",  # FakeClock starts at 2023-11-14T22:13:20Z
        }

    def __call__(self, path: str, query: dict[str, list[str]], _headers: dict[str, str]) -> Reply:
        if path in self.rate_limited:
            self.rate_limited.remove(path)
            return Reply(429, b'{"error":"Too many requests"}', {**self.headers(path), "X-RateLimit-Remaining": "0"})
        if self.failures.get(path):
            self.failures[path] -= 1
            return Reply(503, b"<html>Service Unavailable</html>", {"Content-Type": "text/html"})
        if self.login_required and path.startswith("/api/v1/timelines/"):
            return Reply(401, b'{"error":"This method requires an authenticated user"}', self.headers(path))
        if path in self.broken:
            return Reply(200, b'[{"id": "1", "content": "<p>cut off', self.headers(path))
        if path.startswith("/api/v1/timelines/") or (path.startswith("/api/v1/accounts/") and path.endswith("/statuses")):
            return self.timeline(path, query)
        if path == "/api/v2/instance/":
            return Reply(200, json.dumps(recorded("test_hashtag_tl__01")).encode(), self.headers(path))
        if path == "/api/v1/accounts/lookup":
            return Reply(200, json.dumps(recorded("test_account_lookup__02")).encode(), self.headers(path))
        if path.endswith("/context"):
            return self.context(path.split("/")[-2], path)
        if path.startswith("/api/v1/statuses/") and path.split("/")[-1] in self.by_id:
            return Reply(200, json.dumps(self.by_id[path.split("/")[-1]]).encode(), self.headers(path))
        return Reply(404, b'{"error":"Record not found"}', {"Content-Type": "application/json"})

    def timeline(self, path: str, query: dict[str, list[str]]) -> Reply:
        limit = int(query.get("limit", ["20"])[0])
        max_id = int(query["max_id"][0]) if "max_id" in query else None
        since_id = int(query["since_id"][0]) if "since_id" in query else None
        items = [s for s in self.statuses
                 if (max_id is None or int(s["id"]) < max_id) and (since_id is None or int(s["id"]) > since_id)][:limit]
        headers = self.headers(path)
        if items:
            # The real API links to older (max_id) and newer (min_id) pages around the returned items.
            url = self.base + path
            headers["Link"] = f'<{url}?max_id={items[-1]["id"]}>; rel="next", <{url}?min_id={items[0]["id"]}>; rel="prev"'
        return Reply(200, json.dumps(items).encode(), headers)

    def context(self, status_id: str, path: str) -> Reply:
        status = self.by_id.get(status_id)
        if status is None:
            return Reply(404, b'{"error":"Record not found"}', {"Content-Type": "application/json"})
        ancestors = [self.by_id[status["in_reply_to_id"]]] if status.get("in_reply_to_id") in self.by_id else []
        descendants = [s for s in self.statuses if s.get("in_reply_to_id") == status_id]
        return Reply(200, json.dumps({"ancestors": ancestors, "descendants": descendants}).encode(), self.headers(path))


@pytest.fixture
def replay() -> Iterator[tuple[MastodonReplay, RouterServer]]:
    handler = MastodonReplay(pool())
    with serve(handler) as server:
        handler.base = server.url
        yield handler, server


def connector(url: str, target: str, clock: FakeClock | None = None, **options: Any) -> MastodonConnector:
    clock = clock or FakeClock()
    return MastodonConnector(f"{url}|{target}", "masto_test", sleep=clock.sleep, clock=clock.time, **options)


def test_stream_names_several_instances_and_rejects_garbage() -> None:
    targets = parse_stream("https://mastodon.social|#Bahn, https://chaos.social/|@db@chaos.social,https://a.example|public")
    assert [(t.instance, t.target) for t in targets] == [
        ("https://mastodon.social", "#Bahn"), ("https://chaos.social", "@db@chaos.social"), ("https://a.example", "public"),
    ]
    for bad in ("mastodon.social|#x", "https://mastodon.social", "https://m.example|bahn", ""):
        with pytest.raises(ValueError):
            parse_stream(bad)


def test_hashtag_timeline_pages_by_max_id_and_keeps_raw_bodies(replay: tuple[MastodonReplay, RouterServer]) -> None:
    handler, server = replay
    masto = connector(server.url, "#hoot", limit=5)
    pages = list(masto.fetch(None))
    host = server.url.removeprefix("http://")
    assert [len(json.loads(p.raw.body)) for p in pages] == [5, 5, 2]
    assert server.requests == ["/api/v2/instance/"] + [f"/api/v1/timelines/tag/hoot?{q}" for q in (
        "limit=5", "max_id=117020588242324937&limit=5", "max_id=117020583245459824&limit=5",
    )]
    # Every raw body is exactly what the server sent, and every page's records point at it.
    assert all(p.raw.body.startswith('[{"id": ') and all(post.raw_id == p.raw.raw_id for post in p.posts) for p in pages)
    posts = [post for p in pages for post in p.posts]
    assert len(posts) == 12 and len({p.post_id for p in posts}) == 12
    by_id = {p.post_id: p for p in posts}
    reply = by_id[f"{host}/117020583258292382"]
    assert reply.text == "@mastodonpy_test_2 same!" and reply.author_id == f"admin@{host}"
    assert reply.parent_post_id == f"{host}/117020583245459824" and reply.lang_hint == "en"
    assert reply.url == "http://localhost:3000/@admin/117020583258292382"
    # Accounts are qualified handles; local accounts take the instance's host.
    assert {a.account_id for p in pages for a in p.accounts} == {f"admin@{host}", f"mastodonpy_test_2@{host}"}
    edges = {(i.kind, i.src_account_id, i.dst_account_id, i.post_id, i.target_post_id) for p in pages for i in p.interactions}
    assert edges == {
        ("reply", f"admin@{host}", f"mastodonpy_test_2@{host}", f"{host}/117020583258292382", f"{host}/117020583245459824"),
        ("mention", f"admin@{host}", f"mastodonpy_test_2@{host}", f"{host}/117020583258292382", None),
        ("mention", f"admin@{host}", f"mastodonpy_test@{host}", f"{host}/117020588169351887", None),
        ("repost", f"admin@{host}", f"mastodonpy_test_2@{host}", f"{host}/117020585512776006", f"{host}/117020585505579935"),
    }
    assert pages[-1].cursor.state == {"targets": {f"{server.url}|#hoot": {"since_id": "117020593741189701"}}}
    assert masto.stats.requests == 4 and masto.stats.rate_limit_waits == 0


def test_resume_after_interruption_loses_and_duplicates_nothing(replay: tuple[MastodonReplay, RouterServer]) -> None:
    handler, server = replay
    first = connector(server.url, "#hoot", limit=5)
    stream = first.fetch(None)
    stored = [next(stream)]  # the run is killed after one page was stored
    resumed = list(connector(server.url, "#hoot", limit=5).fetch(stored[-1].cursor))
    ids = [p.post_id for page in stored + resumed for p in page.posts]
    assert len(ids) == len(set(ids)) == 12
    # Nothing new since then: the next run asks only for statuses newer than the newest one seen.
    again = list(connector(server.url, "#hoot", limit=5).fetch(resumed[-1].cursor))
    assert [len(p.posts) for p in again] == [0]
    assert server.requests[-1] == "/api/v1/timelines/tag/hoot?since_id=117020593741189701&limit=5"


def test_rate_limit_waits_until_reset_on_the_injected_clock(replay: tuple[MastodonReplay, RouterServer]) -> None:
    handler, server = replay
    handler.rate_limited.append("/api/v1/timelines/tag/hoot")
    clock = FakeClock()
    masto = connector(server.url, "#hoot", clock, limit=40)
    pages = list(masto.fetch(None))
    # Reset 2023-11-14T22:15:00Z minus the clock's 22:13:20Z is 100 s, plus one second of margin.
    assert clock.sleeps == [101.0]
    assert masto.stats.rate_limit_waits == 1 and masto.stats.requests == 3
    assert sum(len(p.posts) for p in pages) == 12


def test_exhausted_quota_pauses_before_the_next_call(replay: tuple[MastodonReplay, RouterServer]) -> None:
    handler, server = replay
    handler.remaining["/api/v1/timelines/tag/hoot"] = "0"
    clock = FakeClock()
    masto = connector(server.url, "#hoot", clock, limit=5)
    list(masto.fetch(None))
    assert clock.sleeps == [100.0] and masto.stats.rate_limit_waits == 1


def test_rate_limit_longer_than_allowed_raises_named_error(replay: tuple[MastodonReplay, RouterServer]) -> None:
    handler, server = replay
    handler.rate_limited.append("/api/v1/timelines/tag/hoot")
    masto = connector(server.url, "#hoot", limit=5, max_wait=30.0)
    with pytest.raises(RateLimited) as caught:
        list(masto.fetch(None))
    assert caught.value.retry_after == 101.0


def test_server_error_is_retried_with_backoff(replay: tuple[MastodonReplay, RouterServer]) -> None:
    handler, server = replay
    handler.failures["/api/v1/timelines/tag/hoot"] = 2
    clock = FakeClock()
    masto = connector(server.url, "#hoot", clock, limit=40)
    pages = list(masto.fetch(None))
    assert clock.sleeps == [1.0, 2.0] and masto.stats.retries == 2
    assert sum(len(p.posts) for p in pages) == 12


def test_malformed_body_is_quarantined_and_the_cursor_does_not_move(replay: tuple[MastodonReplay, RouterServer]) -> None:
    handler, server = replay
    handler.broken.add("/api/v1/timelines/tag/hoot")
    pages = []
    with pytest.raises(Exception, match="unusable body"):
        for page in connector(server.url, "#hoot").fetch(Cursor("masto_test", "x", {"targets": {}})):
            pages.append(page)
    assert len(pages) == 1 and not pages[0].posts
    assert pages[0].quarantined[0].reason.startswith("malformed JSON")
    assert pages[0].raw.body.startswith('[{"id": "1"')
    assert pages[0].cursor.state == {"targets": {f"{server.url}|#hoot": {}}}


def test_account_timeline_and_reply_tree_with_threads(replay: tuple[MastodonReplay, RouterServer]) -> None:
    handler, server = replay
    host = server.url.removeprefix("http://")
    pages = list(connector(server.url, "@mastodonpy_test", limit=40, threads=True).fetch(None))
    assert server.requests[0] == "/api/v1/accounts/lookup?acct=mastodonpy_test"
    assert server.requests[1].startswith("/api/v1/accounts/117020565966271181/statuses?")
    context_pages = [p for p in pages if p.raw.provenance.endpoint.endswith("/context")]
    # Only the reply has a parent, so exactly one reply tree is fetched.
    assert [p.raw.provenance.endpoint.removeprefix(server.url) for p in context_pages] == [
        "/api/v1/statuses/117020583258292382/context"
    ]
    tree = context_pages[0]
    assert [p.post_id for p in tree.posts] == [f"{host}/117020583245459824"]
    assert tree.posts[0].conversation_id == f"{host}/117020583245459824"
    assert pages[0].cursor.state["targets"][f"{server.url}|@mastodonpy_test"]["account_id"] == "117020565966271181"


def test_thread_target_stores_the_focus_and_its_replies(replay: tuple[MastodonReplay, RouterServer]) -> None:
    _, server = replay
    host = server.url.removeprefix("http://")
    pages = list(connector(server.url, "thread:117020583245459824").fetch(None))
    assert [p.raw.provenance.endpoint.removeprefix(server.url) for p in pages] == [
        "/api/v1/statuses/117020583245459824", "/api/v1/statuses/117020583245459824/context",
    ]
    assert [p.post_id for p in pages[1].posts] == [f"{host}/117020583258292382"]
    assert pages[1].posts[0].conversation_id == f"{host}/117020583245459824"
    assert [i.kind for i in pages[1].interactions] == ["reply", "mention"]


def test_two_instances_keep_separate_cursors_and_ids() -> None:
    first, second = MastodonReplay(pool()), MastodonReplay(pool()[:3])
    with serve(first) as one, serve(second) as two:
        first.base, second.base = one.url, two.url
        clock = FakeClock()
        masto = MastodonConnector(f"{one.url}|#hoot, {two.url}|public", "multi", sleep=clock.sleep, clock=clock.time)
        pages = list(masto.fetch(None))
    assert [len(p.posts) for p in pages] == [12, 3]
    assert set(pages[-1].cursor.state["targets"]) == {f"{one.url}|#hoot", f"{two.url}|public"}
    hosts = {p.post_id.split("/")[0] for page in pages for p in page.posts}
    assert hosts == {one.url.removeprefix("http://"), two.url.removeprefix("http://")}
    # The same people seen through both instances are the same accounts.
    accounts = [{a.account_id.split("@")[0] for a in p.accounts} for p in pages]
    assert accounts[1] <= accounts[0]


def test_quote_posts_and_broken_statuses() -> None:
    quoting = copy.deepcopy(recorded("test_status_reply__02"))
    quoting["id"], quoting["in_reply_to_id"], quoting["in_reply_to_account_id"], quoting["mentions"] = "9", None, None, []
    quoting["quote"] = {"state": "accepted", "quoted_status": recorded("test_status_reply__00")}
    media_only = copy.deepcopy(recorded("test_status_reply__00"))
    media_only["id"], media_only["content"] = "10", ""
    body = json.dumps([quoting, media_only, "not a status"])
    page = parse_mastodon_page(body, "m.example", Provenance("mastodon", "t", datetime.now(timezone.utc), "0"), Cursor("s", "t"))
    assert [p.post_id for p in page.posts] == ["m.example/9", "m.example/117020583245459824"]
    assert [(i.kind, i.dst_account_id, i.target_post_id) for i in page.interactions] == [
        ("quote", "mastodonpy_test_2@m.example", "m.example/117020583245459824")
    ]
    assert [q.reason for q in page.quarantined] == [
        "status: status has no text (media-only or deleted)", "status: not a JSON object",
    ]


def test_private_instances_are_refused_without_the_opt_in(monkeypatch: pytest.MonkeyPatch) -> None:
    from connectors.base import UnsafeUrl

    monkeypatch.delenv("RESONANZ_ALLOW_PRIVATE_URLS", raising=False)
    with pytest.raises(UnsafeUrl, match="RESONANZ_ALLOW_PRIVATE_URLS"):
        list(connector("http://127.0.0.1:9", "#hoot").fetch(None))


def test_instance_that_needs_login_names_the_variable(replay: tuple[MastodonReplay, RouterServer]) -> None:
    from connectors.base import Forbidden

    handler, server = replay
    handler.login_required = True
    with pytest.raises(Forbidden, match="RESONANZ_MASTODON_ACCESS_TOKEN"):
        list(connector(server.url, "public").fetch(None))
