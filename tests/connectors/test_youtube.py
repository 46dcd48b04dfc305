"""YouTube comment threads: the shared HTTP client against recorded real API responses on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from connectors.base import Forbidden, MissingCredential, RateLimited
from connectors.records import Cursor
from connectors.youtube import YouTubeCommentsConnector, seconds_until_quota_reset

from http_harness import FIXTURES, FakeClock, Reply
from router_server import RouterServer, serve

HERE = FIXTURES / "youtube"
PAGE_1_TOKEN = json.loads((HERE / "comment_threads_by_video_paged_1.json").read_text())["nextPageToken"]


def recorded(name: str) -> bytes:
    return (HERE / f"{name}.json").read_bytes()


def thread_with_replies() -> bytes:
    """The recorded thread resource with a reply, as the one item of a list response (see PROVENANCE)."""
    thread = json.loads(recorded("comment_thread_info"))
    return json.dumps({"kind": "youtube#commentThreadListResponse", "pageInfo": {"totalResults": 1, "resultsPerPage": 20},
                       "items": [thread]}).encode()


class YouTubeReplay:
    def __init__(self) -> None:
        self.refuse: bytes | None = None
        self.failures = 0
        self.rate_limited = 0

    def __call__(self, path: str, query: dict[str, list[str]], _headers: dict[str, str]) -> Reply:
        json_type = {"Content-Type": "application/json; charset=UTF-8"}
        if query.get("key") != ["test-key"]:
            return Reply(400, b'{"error": {"code": 400, "message": "API key not valid."}}', json_type)
        if self.refuse:
            return Reply(403, self.refuse, json_type)
        if self.rate_limited:
            self.rate_limited -= 1
            return Reply(429, b'{"error": {"code": 429}}', {**json_type, "Retry-After": "30"})
        if self.failures:
            self.failures -= 1
            return Reply(503, b'{"error": {"code": 503, "message": "The service is currently unavailable."}}', json_type)
        if path == "/youtube/v3/comments" and query.get("parentId") == ["Ugw5zYU6n9pmIgAZWvN4AaABAg"]:
            second = query.get("pageToken") == [json.loads(recorded("comments_by_parent_paged_1"))["nextPageToken"]]
            return Reply(200, recorded("comments_by_parent_paged_2" if second else "comments_by_parent_paged_1"), json_type)
        if path == "/youtube/v3/comments":
            return Reply(404, b'{"error": {"code": 404, "errors": [{"reason": "commentNotFound"}]}}', json_type)
        if path != "/youtube/v3/commentThreads":
            return Reply(404, b"Not Found", {"Content-Type": "text/html"})
        if query.get("allThreadsRelatedToChannelId") == ["UCa-vrCLQHviTOVnEKDOdetQ"]:
            threads = json.loads(recorded("comment_threads_all_to_me"))
            threads["items"][1]["snippet"]["totalReplyCount"] = 3  # see PROVENANCE
            return Reply(200, json.dumps(threads).encode(), json_type)
        if query.get("videoId") == ["F1UP7wRCPH8"]:
            if query.get("pageToken") == [PAGE_1_TOKEN]:
                return Reply(200, recorded("comment_thread_api_response"), json_type)
            return Reply(200, recorded("comment_threads_by_video_paged_1"), json_type)
        if query.get("videoId") == ["D-lhorsDlUQ"]:
            return Reply(200, thread_with_replies(), json_type)
        if query.get("allThreadsRelatedToChannelId") == ["UC_x5XG1OV2P6uZZ5FSM9Ttw"]:
            return Reply(200, recorded("comment_threads_by_channel"), json_type)
        return Reply(404, b'{"error": {"code": 404, "errors": [{"reason": "videoNotFound"}]}}', json_type)


@pytest.fixture
def api() -> Iterator[tuple[YouTubeReplay, RouterServer]]:
    handler = YouTubeReplay()
    with serve(handler) as server:
        yield handler, server


def connector(url: str, stream: str, clock: FakeClock | None = None, **options: Any) -> YouTubeCommentsConnector:
    clock = clock or FakeClock()
    return YouTubeCommentsConnector(stream, "yt_test", "test-key", base_url=url + "/youtube/v3",
                                    sleep=clock.sleep, clock=clock.time, **options)


def test_video_threads_follow_next_page_token_and_count_quota(api: tuple[YouTubeReplay, RouterServer]) -> None:
    _, server = api
    yt = connector(server.url, "video:F1UP7wRCPH8")
    pages = list(yt.fetch(None))
    assert [p.raw.body.encode() for p in pages] == [recorded("comment_threads_by_video_paged_1"), recorded("comment_thread_api_response")]
    assert f"pageToken={PAGE_1_TOKEN}" in server.requests[1].replace("%3D", "=")
    assert all("part=snippet%2Creplies" in r and "order=time" in r and "maxResults=100" in r for r in server.requests)
    assert [len(p.posts) for p in pages] == [5, 2]
    first = pages[0].posts[0]
    assert (first.post_id, first.author_id, first.text) == ("UgyZ1jqkHKYvi1-ruOZ4AaABAg", "UCzj-CjKYmGlZ7vTL-vOe57A", "Google.com")
    assert first.url == "https://www.youtube.com/watch?v=F1UP7wRCPH8&lc=UgyZ1jqkHKYvi1-ruOZ4AaABAg"
    assert pages[0].posts[-1].reply_count == 2 and pages[0].posts[2].like_count == 4
    assert {a.display_name for a in pages[0].accounts} >= {"himani agarwal", "el bojo loco"}
    assert yt.stats.quota_units == 2 and yt.stats.requests == 2
    # The key is sent but never written into provenance.
    assert all("key" not in p.raw.provenance.endpoint for p in pages)
    assert pages[0].cursor.state == {"page_token": PAGE_1_TOKEN, "run_newest": "2019-11-26T15:51:44.000Z"}
    assert pages[1].cursor.state == {"newest": "2019-11-26T15:51:44.000Z"}


def test_replies_become_reply_edges_to_the_top_level_author(api: tuple[YouTubeReplay, RouterServer]) -> None:
    _, server = api
    page = list(connector(server.url, "video:D-lhorsDlUQ").fetch(None))[0]
    assert [p.post_id for p in page.posts] == ["UgydxWWoeA7F1OdqypJ4AaABAg", "UgydxWWoeA7F1OdqypJ4AaABAg.8wWQ3tdHcFx8xcDheui-qb"]
    reply = page.posts[1]
    assert reply.parent_post_id == reply.conversation_id == "UgydxWWoeA7F1OdqypJ4AaABAg"
    assert [(i.kind, i.src_account_id, i.dst_account_id, i.target_post_id) for i in page.interactions] == [
        ("reply", "UCsl2A_QzcSnFD2hpCyVwXxA", "UCe9i1nJCcevTa6KJa55KYog", "UgydxWWoeA7F1OdqypJ4AaABAg")
    ]


def test_all_replies_follows_comments_list_pages_and_counts_their_quota(api: tuple[YouTubeReplay, RouterServer]) -> None:
    _, server = api
    yt = connector(server.url, "channel:UCa-vrCLQHviTOVnEKDOdetQ", all_replies=True)
    pages = list(yt.fetch(None))
    assert [p.raw.provenance.endpoint.split("/youtube/v3/")[1] for p in pages] == [
        "comments?parentId=Ugw5zYU6n9pmIgAZWvN4AaABAg", "comments?parentId=Ugw5zYU6n9pmIgAZWvN4AaABAg",
        "commentThreads?allThreadsRelatedToChannelId=UCa-vrCLQHviTOVnEKDOdetQ",
    ]
    replies = [p for page in pages[:2] for p in page.posts]
    assert [r.text for r in replies] == ["this is the third reply!", "this is the second reply!", "hey, this is the replay"]
    assert {r.parent_post_id for r in replies} == {"Ugw5zYU6n9pmIgAZWvN4AaABAg"}
    # The replies pages carry the cursor from before their thread page, so a resume fetches them again.
    assert pages[0].cursor.state == {"page_token": ""} and "newest" in pages[2].cursor.state
    # The other thread with a reply was not recorded: its 404 is counted as skipped, and charged.
    assert yt.stats.quota_units == 4 and yt.stats.skipped == {"replies not found": 1}
    # Here the replier is the thread's author: self-replies are not edges.
    assert not [i for page in pages[:2] for i in page.interactions]


def test_channel_threads_point_at_the_channel(api: tuple[YouTubeReplay, RouterServer]) -> None:
    _, server = api
    page = list(connector(server.url, "channel:UC_x5XG1OV2P6uZZ5FSM9Ttw").fetch(None))[0]
    assert "allThreadsRelatedToChannelId=UC_x5XG1OV2P6uZZ5FSM9Ttw" in server.requests[0]
    assert [(i.src_account_id, i.dst_account_id) for i in page.interactions] == [
        ("UCTWlvHQQXUs-4IVfdnGOUbw", "UC_x5XG1OV2P6uZZ5FSM9Ttw"), ("UCCuQ3wts9ASkk0qZJyEjYbw", "UC_x5XG1OV2P6uZZ5FSM9Ttw"),
    ]


def test_resume_and_stop_at_already_stored_threads(api: tuple[YouTubeReplay, RouterServer]) -> None:
    _, server = api
    stored = [next(connector(server.url, "video:F1UP7wRCPH8").fetch(None))]
    resumed = list(connector(server.url, "video:F1UP7wRCPH8").fetch(stored[0].cursor))
    assert [len(p.posts) for p in resumed] == [2] and "pageToken" in server.requests[-1]
    again = connector(server.url, "video:F1UP7wRCPH8")
    assert len(list(again.fetch(resumed[-1].cursor))) == 1 and again.stats.quota_units == 1


def test_retries_and_rate_limit_waits_are_counted_with_quota(api: tuple[YouTubeReplay, RouterServer]) -> None:
    handler, server = api
    handler.failures, handler.rate_limited = 1, 1
    clock = FakeClock()
    yt = connector(server.url, "video:D-lhorsDlUQ", clock)
    list(yt.fetch(None))
    assert clock.sleeps == [30.0, 1.0]
    assert (yt.stats.rate_limit_waits, yt.stats.retries, yt.stats.requests, yt.stats.quota_units) == (1, 1, 3, 3)


def test_quota_exceeded_and_budget_raise_rate_limited_until_pacific_midnight(api: tuple[YouTubeReplay, RouterServer]) -> None:
    handler, server = api
    clock = FakeClock(now=1_700_000_000.0)  # 2023-11-14 14:13:20 PST
    budget = connector(server.url, "video:F1UP7wRCPH8", clock, daily_quota=1)
    with pytest.raises(RateLimited) as caught:
        list(budget.fetch(None))
    assert caught.value.retry_after == seconds_until_quota_reset(clock.now) == 35_200.0
    assert budget.stats.quota_units == 1
    handler.refuse = b'{"error": {"code": 403, "errors": [{"domain": "youtube.quota", "reason": "quotaExceeded"}]}}'
    with pytest.raises(RateLimited, match="daily quota exceeded"):
        list(connector(server.url, "video:F1UP7wRCPH8", clock).fetch(None))
    handler.refuse = b'{"error": {"code": 403, "errors": [{"domain": "youtube.commentThread", "reason": "commentsDisabled"}]}}'
    with pytest.raises(Forbidden, match="comments are disabled"):
        list(connector(server.url, "video:F1UP7wRCPH8", clock).fetch(None))


def test_missing_key_and_bad_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RESONANZ_YOUTUBE_API_KEY", raising=False)
    with pytest.raises(MissingCredential, match="export RESONANZ_YOUTUBE_API_KEY="):
        YouTubeCommentsConnector("video:x", "s")
    monkeypatch.setenv("RESONANZ_YOUTUBE_API_KEY", "from-env")
    assert YouTubeCommentsConnector("video:x", "s")._api_key == "from-env"
    with pytest.raises(ValueError):
        YouTubeCommentsConnector("playlist:x", "s")


def test_broken_threads_are_quarantined() -> None:
    from datetime import datetime, timezone

    from connectors.records import Provenance
    from connectors.youtube import parse_comment_threads

    good = json.loads(recorded("comment_threads_by_channel"))
    good["items"].append({"kind": "youtube#commentThread", "id": "x", "snippet": {"videoId": "v"}})
    good["items"].append("garbage")
    page = parse_comment_threads(json.dumps(good), Provenance("youtube", "t", datetime.now(timezone.utc), "0"), Cursor("s", "t"))
    assert len(page.posts) == 2
    assert [q.reason for q in page.quarantined] == ["thread: thread has no topLevelComment", "thread: thread has no snippet"]
