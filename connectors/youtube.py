"""YouTube Data API v3 comment threads through the shared HTTP client, with quota accounting.

A stream is `video:<videoId>` or `channel:<channelId>` (allThreadsRelatedToChannelId). Each
commentThreads.list call costs 1 quota unit of the project's daily quota (10,000 by default, reset at
midnight Pacific Time); units used are counted in `stats.quota_units` and a run stops with
RateLimited before it would exceed `daily_quota`. Pages come newest first (order=time); a later run
stops at the first thread no newer than the newest one already stored. A thread carries at most 5
replies; `all_replies=True` fetches the rest with comments.list (1 unit per 100 replies). Known gap:
replies added later to an old thread are not revisited (the thread order is by creation time).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from connectors.base import (
    MALFORMED,
    Forbidden,
    MalformedPayload,
    MissingCredential,
    NotFound,
    RateLimited,
    open_json_page,
)
from connectors.http import (
    HttpClient,
    HttpStats,
    allow_private_from_env,
    default_transport,
    proxy_from_env,
)
from connectors.records import (
    Account,
    Cursor,
    Interaction,
    Page,
    Post,
    Provenance,
    Quarantined,
    RawPayload,
)
from connectors.rss import html_text_and_links

PLATFORM = "youtube"
VERSION = "0.1.0"
API_BASE = "https://www.googleapis.com/youtube/v3"
API_KEY_ENV = "RESONANZ_YOUTUBE_API_KEY"
UNITS_PER_CALL = {"commentThreads.list": 1, "comments.list": 1}  # documented quota cost per request
MAX_RESULTS = 100  # commentThreads.list caps maxResults at 100
_QUOTA_ZONE = ZoneInfo("America/Los_Angeles")  # the daily quota resets at midnight Pacific Time


@dataclass(slots=True)
class QuotaStats(HttpStats):
    """HTTP counters plus the API quota units this connector spent."""

    quota_units: int = 0


class _BrokenRecord(ValueError):
    """A comment whose fields cannot be trusted; it goes to quarantine."""


# --- pure parsing -------------------------------------------------------------------------------


def parse_comment_threads(body: str, provenance: Provenance, cursor: Cursor) -> Page:
    """Turn one commentThreads.list response body into a Page: comments as posts, replies as reply edges."""
    page, payload = open_json_page(PLATFORM, body, provenance, cursor)
    if payload is MALFORMED:
        return page
    raw = page.raw
    if not isinstance(payload, dict) or not isinstance(payload.get("items", []), list):
        page.quarantined.append(_quarantine(raw, "response is not a commentThreadListResponse", body))
        return page
    accounts: dict[str, Account] = {}
    seen: set[str] = set()
    for thread in payload.get("items", []):
        try:
            top, video_id, channel_id, replies = _thread_parts(thread)
            post, author = _comment(top, raw.raw_id, video_id, None)
        except _BrokenRecord as exc:
            page.quarantined.append(_quarantine(raw, f"thread: {exc}", json.dumps(thread, ensure_ascii=False)))
            continue
        post.reply_count = thread["snippet"].get("totalReplyCount") if isinstance(thread["snippet"].get("totalReplyCount"), int) else None
        _add(page, accounts, seen, post, author)
        # A top-level comment answers the video, so it points at the channel that owns the video.
        if channel_id and post.author_id and channel_id != post.author_id:
            page.interactions.append(Interaction(PLATFORM, "reply", post.author_id, channel_id, post.post_id,
                                                 f"video:{video_id}" if video_id else None, post.created_at))
        for reply in replies:
            try:
                child, child_author = _comment(reply, raw.raw_id, video_id, post.post_id)
            except _BrokenRecord as exc:
                page.quarantined.append(_quarantine(raw, f"reply: {exc}", json.dumps(reply, ensure_ascii=False)))
                continue
            if child.post_id in seen:
                continue
            _add(page, accounts, seen, child, child_author)
            if child.author_id and post.author_id and child.author_id != post.author_id:
                page.interactions.append(Interaction(PLATFORM, "reply", child.author_id, post.author_id, child.post_id,
                                                     child.parent_post_id, child.created_at))
    page.accounts.extend(accounts.values())
    return page


def parse_comment_replies(body: str, provenance: Provenance, cursor: Cursor, parent_author: str | None) -> Page:
    """Turn one comments.list (parentId=...) response body into a Page of replies to `parent_author`."""
    raw = RawPayload(provenance=provenance, body=body, content_type="application/json")
    page = Page(raw=raw, cursor=cursor)
    try:
        payload = json.loads(body)
    except json.JSONDecodeError as exc:
        page.quarantined.append(_quarantine(raw, f"malformed JSON: {exc}", body))
        return page
    accounts: dict[str, Account] = {}
    seen: set[str] = set()
    for item in payload.get("items") or [] if isinstance(payload, dict) else []:
        try:
            reply, author = _comment(item, raw.raw_id, None, None)
        except _BrokenRecord as exc:
            page.quarantined.append(_quarantine(raw, f"reply: {exc}", json.dumps(item, ensure_ascii=False)))
            continue
        reply.conversation_id = reply.parent_post_id or reply.conversation_id
        _add(page, accounts, seen, reply, author)
        if parent_author and reply.author_id and reply.author_id != parent_author:
            page.interactions.append(Interaction(PLATFORM, "reply", reply.author_id, parent_author, reply.post_id,
                                                 reply.parent_post_id, reply.created_at))
    page.accounts.extend(accounts.values())
    return page


def _add(page: Page, accounts: dict[str, Account], seen: set[str], post: Post, author: Account | None) -> None:
    if post.post_id in seen:
        return
    seen.add(post.post_id)
    page.posts.append(post)
    if author is not None:
        accounts.setdefault(author.account_id, author)


def _quarantine(raw: RawPayload, reason: str, fragment: str) -> Quarantined:
    return Quarantined(source=PLATFORM, raw_id=raw.raw_id, reason=reason, fragment=fragment)


def _thread_parts(thread: Any) -> tuple[dict[str, Any], str | None, str | None, list[Any]]:
    if not isinstance(thread, dict) or not isinstance(thread.get("snippet"), dict):
        raise _BrokenRecord("thread has no snippet")
    snippet = thread["snippet"]
    top = snippet.get("topLevelComment")
    if not isinstance(top, dict):
        raise _BrokenRecord("thread has no topLevelComment")
    replies = (thread.get("replies") or {}).get("comments") if isinstance(thread.get("replies"), dict) else None
    video_id = snippet.get("videoId") if isinstance(snippet.get("videoId"), str) else None
    channel_id = snippet.get("channelId") if isinstance(snippet.get("channelId"), str) else None
    return top, video_id, channel_id, replies if isinstance(replies, list) else []


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise _BrokenRecord(f"publishedAt is not ISO-8601: {value!r}") from exc


def _comment(item: Any, raw_id: str, video_id: str | None, parent_id: str | None) -> tuple[Post, Account | None]:
    if not isinstance(item, dict) or not isinstance(item.get("snippet"), dict):
        raise _BrokenRecord("comment has no snippet")
    comment_id = item.get("id")
    if not isinstance(comment_id, str) or not comment_id:
        raise _BrokenRecord("comment has no id")
    snippet = item["snippet"]
    text = snippet.get("textOriginal")
    if not isinstance(text, str) or not text.strip():
        display = snippet.get("textDisplay")
        text = html_text_and_links(display)[0] if isinstance(display, str) else ""
    if not text.strip():
        raise _BrokenRecord("comment has no text")
    channel = snippet.get("authorChannelId")
    author_id = channel.get("value") if isinstance(channel, dict) and isinstance(channel.get("value"), str) else None
    video = snippet.get("videoId") if isinstance(snippet.get("videoId"), str) else video_id
    author = None
    if author_id:
        author = Account(
            source=PLATFORM, account_id=author_id,
            display_name=snippet.get("authorDisplayName") if isinstance(snippet.get("authorDisplayName"), str) else None,
            url=snippet.get("authorChannelUrl") if isinstance(snippet.get("authorChannelUrl"), str) else None,
            raw_id=raw_id,
        )
    like_count = snippet.get("likeCount")
    post = Post(
        source=PLATFORM,
        post_id=comment_id,
        author_id=author_id,
        text=text,
        created_at=_parse_time(snippet.get("publishedAt")),
        url=f"https://www.youtube.com/watch?v={video}&lc={comment_id}" if video else None,
        parent_post_id=parent_id or (snippet.get("parentId") if isinstance(snippet.get("parentId"), str) else None),
        conversation_id=parent_id or comment_id,
        like_count=like_count if isinstance(like_count, int) else None,
        raw_id=raw_id,
    )
    return post, author


# --- live connector -----------------------------------------------------------------------------


class _KeepRefusals(httpx.BaseTransport):
    """Read the body of 403 answers, which the shared client turns into Forbidden without it."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner
        self.last_refusal = ""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if response.status_code == 403:
            response.read()
            self.last_refusal = response.text
        return response

    def close(self) -> None:
        self.inner.close()


def seconds_until_quota_reset(now: float) -> float:
    """Seconds from epoch `now` to the next midnight Pacific Time, when the daily quota resets."""
    local = datetime.fromtimestamp(now, _QUOTA_ZONE)
    midnight = datetime.combine(local.date() + timedelta(days=1), datetime.min.time(), _QUOTA_ZONE)
    return midnight.timestamp() - now


class YouTubeCommentsConnector:
    """Read the comment threads of a video or channel, newest first, counting quota units."""

    name = PLATFORM
    version = VERSION
    connector = "youtube"

    def __init__(
        self, stream: str, source_name: str, api_key: str | None = None, *, base_url: str = API_BASE,
        max_results: int = MAX_RESULTS, max_pages: int | None = None, daily_quota: int = 10_000,
        all_replies: bool = False, sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.time,
    ) -> None:
        api_key = api_key or os.environ.get(API_KEY_ENV)
        if not api_key:
            raise MissingCredential("YouTube Data API key", API_KEY_ENV)
        kind, _, value = stream.partition(":")
        if kind not in ("video", "channel") or not value.strip():
            raise ValueError(f"YouTube stream {stream!r} must be video:<videoId> or channel:<channelId>")
        self.filter = {"videoId" if kind == "video" else "allThreadsRelatedToChannelId": value.strip()}
        self.stream = stream
        self.source_name = source_name
        self._api_key = api_key
        self.base_url = base_url.rstrip("/")
        self.max_results = max(1, min(max_results, MAX_RESULTS))
        self.max_pages = max_pages
        self.daily_quota = daily_quota
        self.all_replies = all_replies  # fetch replies beyond the 5 a thread carries (1 unit per 100 replies)
        self.clock = clock
        self._refusals = _KeepRefusals(default_transport(allow_private=allow_private_from_env(), proxy=proxy_from_env()))
        self.http = HttpClient(sleep=sleep, clock=clock, transport=self._refusals)
        self.stats = QuotaStats()
        self._charged_requests = 0

    def fetch(self, cursor: Cursor | None) -> Iterator[Page]:
        """Yield comment-thread pages newest first, down to the newest thread an earlier run stored."""
        state = dict(cursor.state) if cursor else {}
        url = f"{self.base_url}/commentThreads"
        pages = 0
        while self.max_pages is None or pages < self.max_pages:
            token, newest, run_newest = state.get("page_token"), state.get("newest"), state.get("run_newest")
            params = {"part": "snippet,replies", "order": "time", "textFormat": "plainText",
                      "maxResults": self.max_results, **self.filter, "key": self._api_key}
            if token:
                params["pageToken"] = token
            previous_state = dict(state)
            response = self._get(url, params, "commentThreads.list")
            endpoint = f"{url}?{'&'.join(f'{k}={v}' for k, v in self.filter.items())}"
            provenance = Provenance(self.connector, endpoint, datetime.now(UTC), self.version)
            try:
                payload = json.loads(response.text)
            except json.JSONDecodeError:
                payload = None
            if not isinstance(payload, dict):
                # Keep the unusable body in quarantine; the cursor stays where it was.
                yield parse_comment_threads(response.text, provenance, Cursor(self.source_name, self.stream, state))
                raise MalformedPayload(f"{endpoint} returned a body that is not a JSON object")
            times = [t for t in (_thread_time(item) for item in payload.get("items") or []) if t]
            run_newest = max([run_newest, *times] if run_newest else times, default=None)
            next_token = payload.get("nextPageToken")
            reached_old = newest is not None and any(t <= newest for t in times)
            finished = not next_token or not times or reached_old
            if finished:
                state = {"newest": run_newest or newest}
            else:
                state = {"page_token": next_token, "newest": newest, "run_newest": run_newest}
            state = {k: v for k, v in state.items() if v is not None}
            if self.all_replies:
                # These pages keep the cursor before this thread page, so a resume fetches them again.
                # An empty page token is an explicit "from the first page" cursor.
                yield from self._missing_replies(payload, Cursor(self.source_name, self.stream, previous_state or {"page_token": ""}))
            yield parse_comment_threads(response.text, provenance, Cursor(self.source_name, self.stream, state))
            pages += 1
            if finished:
                return

    def _missing_replies(self, payload: dict[str, Any], cursor: Cursor) -> Iterator[Page]:
        for thread in payload.get("items") or []:
            try:
                top, _, _, inline = _thread_parts(thread)
            except _BrokenRecord:
                continue  # quarantined with its thread page
            total = thread["snippet"].get("totalReplyCount")
            if not isinstance(total, int) or total <= len(inline):
                continue
            channel = top.get("snippet", {}).get("authorChannelId") if isinstance(top.get("snippet"), dict) else None
            parent_author = channel.get("value") if isinstance(channel, dict) else None
            token: str | None = None
            while True:
                params = {"part": "snippet", "parentId": thread.get("id"), "maxResults": MAX_RESULTS,
                          "textFormat": "plainText", "key": self._api_key, **({"pageToken": token} if token else {})}
                try:
                    response = self._get(f"{self.base_url}/comments", params, "comments.list")
                except NotFound:
                    # The thread was deleted since it was listed: counted, not a failed run.
                    self.stats.skip("replies not found")
                    break
                endpoint = f"{self.base_url}/comments?parentId={thread.get('id')}"
                provenance = Provenance(self.connector, endpoint, datetime.now(UTC), self.version)
                yield parse_comment_replies(response.text, provenance, cursor, parent_author)
                try:
                    token = json.loads(response.text).get("nextPageToken")
                except (json.JSONDecodeError, AttributeError):
                    token = None
                if not token:
                    break

    def _get(self, url: str, params: dict[str, Any], method: str) -> httpx.Response:
        cost = UNITS_PER_CALL[method]
        if self.stats.quota_units + cost > self.daily_quota:
            wait = seconds_until_quota_reset(self.clock())
            raise RateLimited(f"YouTube quota budget of {self.daily_quota} units is spent; it resets in {wait:.0f}s", wait)
        try:
            return self.http.request("GET", url, params=params)
        except Forbidden as exc:
            refusal = self._refusals.last_refusal
            if "quotaExceeded" in refusal or "dailyLimitExceeded" in refusal:
                wait = seconds_until_quota_reset(self.clock())
                raise RateLimited(f"YouTube daily quota exceeded; it resets in {wait:.0f}s", wait) from exc
            if "commentsDisabled" in refusal:
                raise Forbidden(f"comments are disabled for {self.stream}") from exc
            raise Forbidden(f"YouTube refused {self.stream} (403): check {API_KEY_ENV} and the API's enablement") from exc
        finally:
            self._sync_stats(cost)

    def _sync_stats(self, cost: int) -> None:
        http = self.http.stats
        self.stats.requests, self.stats.retries = http.requests, http.retries
        self.stats.rate_limit_waits, self.stats.waited_seconds = http.rate_limit_waits, http.waited_seconds
        # Every request is charged, retried and failed ones too ("even invalid requests incur a quota cost").
        self.stats.quota_units += (http.requests - self._charged_requests) * cost
        self._charged_requests = http.requests


def _thread_time(item: Any) -> str | None:
    """Return a thread's top-level publishedAt (ISO strings in one format compare in time order)."""
    try:
        value = item["snippet"]["topLevelComment"]["snippet"]["publishedAt"]
    except (KeyError, TypeError):
        return None
    return value if isinstance(value, str) else None
