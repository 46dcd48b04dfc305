"""Bluesky (AT Protocol) via the `atproto` client: post search, author feeds and threads.

A stream is `search:<query>` (or just the query), `author:<handle or DID>` or `thread:<at:// post URI>`.
Accounts are DIDs (stable; handles can change and are kept as `handle`); posts are their at:// URIs,
so the author of any referenced post is readable from the URI itself. Reply, quote and mention edges
come from the post record (reply refs, record embeds, mention facets); repost edges from the author
feed's `reasonRepost`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any

from connectors.base import (
    MALFORMED,
    Forbidden,
    MalformedPayload,
    MissingCredential,
    NotFound,
    RateLimited,
    TransientError,
    open_json_page,
    skip_oversized,
)
from connectors.http import MAX_BYTES, MAX_SECONDS, USER_AGENT, HttpClient, HttpClientTransport, HttpStats
from connectors.records import Account, Cursor, Interaction, Page, Post, Provenance, Quarantined, RawPayload

PLATFORM = "bluesky"
VERSION = "0.1.0"
PUBLIC_APPVIEW = "https://public.api.bsky.app"
MAX_LIMIT = 100  # searchPosts and getAuthorFeed both cap `limit` at 100
_POST_COLLECTION = "app.bsky.feed.post"
log = logging.getLogger(__name__)


class _BrokenRecord(ValueError):
    """A post view whose fields cannot be trusted; it goes to quarantine."""


def did_of(at_uri: str) -> str | None:
    """Return the repository DID (the author) of an at:// URI, or None if it is not one."""
    if not isinstance(at_uri, str) or not at_uri.startswith("at://"):
        return None
    authority = at_uri.removeprefix("at://").split("/", 1)[0]
    return authority if authority.startswith("did:") else None


def web_url(handle: str | None, at_uri: str) -> str | None:
    """Return the bsky.app address of a post URI."""
    parts = at_uri.removeprefix("at://").split("/")
    if len(parts) != 3 or parts[1] != _POST_COLLECTION:
        return None
    return f"https://bsky.app/profile/{handle or parts[0]}/post/{parts[2]}"


# --- pure parsing -------------------------------------------------------------------------------


def parse_bluesky_page(body: str, provenance: Provenance, cursor: Cursor) -> Page:
    """Turn one searchPosts, getAuthorFeed or getPostThread response body into a Page."""
    page, payload = open_json_page(PLATFORM, body, provenance, cursor)
    if payload is MALFORMED:
        return page
    raw = page.raw
    if not isinstance(payload, dict):
        page.quarantined.append(_quarantine(raw, "response is not a JSON object", body))
        return page
    # (post view, the feed item's reason, conversation root URI)
    views: list[tuple[Any, Any, str | None]] = []
    if isinstance(payload.get("posts"), list):
        views = [(view, None, None) for view in payload["posts"]]
    elif isinstance(payload.get("feed"), list):
        for item in payload["feed"]:
            views.append((item.get("post") if isinstance(item, dict) else item, item.get("reason") if isinstance(item, dict) else None, None))
    elif isinstance(payload.get("thread"), dict):
        views = list(_thread_views(payload["thread"], page, raw))
    else:
        page.quarantined.append(_quarantine(raw, "response has no posts, feed or thread", body))
        return page

    accounts: dict[str, Account] = {}
    seen_posts: set[str] = set()
    seen_edges: set[tuple[str, str, str, str]] = set()

    def add_edge(edge: Interaction) -> None:
        key = (edge.kind, edge.src_account_id, edge.dst_account_id, edge.post_id)
        if edge.dst_account_id and edge.src_account_id != edge.dst_account_id and key not in seen_edges:
            seen_edges.add(key)
            page.interactions.append(edge)

    for view, reason, root in views:
        try:
            post, author, record = _parse_post_view(view, raw.raw_id)
        except _BrokenRecord as exc:
            page.quarantined.append(_quarantine(raw, f"post: {exc}", json.dumps(view, ensure_ascii=False)))
            continue
        if root and not post.conversation_id:
            post.conversation_id = root
        accounts.setdefault(author.account_id, author)
        if post.post_id not in seen_posts:
            seen_posts.add(post.post_id)
            page.posts.append(post)
        for edge in _record_edges(record, post):
            add_edge(edge)
        if isinstance(reason, dict) and str(reason.get("$type", "")).endswith("#reasonRepost"):
            by = reason.get("by")
            try:
                booster = _account(by, raw.raw_id)
            except _BrokenRecord as exc:
                page.quarantined.append(_quarantine(raw, f"repost reason: {exc}", json.dumps(reason, ensure_ascii=False)))
                continue
            accounts.setdefault(booster.account_id, booster)
            # Newer AppViews name the repost record; older ones do not, so derive a stable id.
            repost_id = reason.get("uri") or f"{post.post_id}#repost:{booster.account_id}"
            add_edge(Interaction(PLATFORM, "repost", booster.account_id, post.author_id or "", repost_id,
                                 post.post_id, _parse_time(reason.get("indexedAt"))))
    page.accounts.extend(accounts.values())
    return page


def _thread_views(node: dict[str, Any], page: Page, raw: RawPayload) -> Iterator[tuple[Any, Any, str | None]]:
    """Walk a threadViewPost: parents up to the root, then the focus and its replies depth-first."""
    if not str(node.get("$type", "")).endswith("#threadViewPost"):
        page.quarantined.append(_quarantine(raw, f"thread node is {node.get('$type')!r}", json.dumps(node, ensure_ascii=False)))
        return
    chain = [node]
    parent = node.get("parent")
    while isinstance(parent, dict) and str(parent.get("$type", "")).endswith("#threadViewPost"):
        chain.append(parent)
        parent = parent.get("parent")
    root_view = chain[-1].get("post") if isinstance(chain[-1].get("post"), dict) else {}
    record = root_view.get("record") if isinstance(root_view.get("record"), dict) else {}
    reply = record.get("reply") if isinstance(record.get("reply"), dict) else {}
    root = (reply.get("root") or {}).get("uri") if isinstance(reply.get("root"), dict) else None
    root = root or root_view.get("uri")
    for ancestor in reversed(chain[1:]):
        yield ancestor.get("post"), None, root
    stack = [node]
    while stack:
        current = stack.pop()
        yield current.get("post"), None, root
        replies = [r for r in current.get("replies") or [] if isinstance(r, dict)]
        for reply_node in reversed(replies):
            if str(reply_node.get("$type", "")).endswith("#threadViewPost"):
                stack.append(reply_node)
            else:
                # Deleted or blocked replies: kept with their reason instead of vanishing.
                page.quarantined.append(_quarantine(raw, f"thread reply is {reply_node.get('$type')!r}",
                                                    json.dumps(reply_node, ensure_ascii=False)))


def _quarantine(raw: RawPayload, reason: str, fragment: str) -> Quarantined:
    return Quarantined(source=PLATFORM, raw_id=raw.raw_id, reason=reason, fragment=fragment)


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _count(item: dict[str, Any], key: str) -> int | None:
    value = item.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _account(item: Any, raw_id: str) -> Account:
    if not isinstance(item, dict) or not str(item.get("did", "")).startswith("did:"):
        raise _BrokenRecord(f"author has no DID: {item!r}"[:200])
    handle = item.get("handle") if isinstance(item.get("handle"), str) else None
    return Account(
        source=PLATFORM,
        account_id=item["did"],
        handle=None if handle == "handle.invalid" else handle,
        display_name=item.get("displayName") or None,
        description=item.get("description") or None,
        url=f"https://bsky.app/profile/{item['did']}",
        followers_count=_count(item, "followersCount"),
        following_count=_count(item, "followsCount"),
        post_count=_count(item, "postsCount"),
        created_at=_parse_time(item.get("createdAt")),
        raw_id=raw_id,
    )


def _parse_post_view(view: Any, raw_id: str) -> tuple[Post, Account, dict[str, Any]]:
    if not isinstance(view, dict):
        raise _BrokenRecord("not a JSON object")
    uri = view.get("uri")
    if did_of(uri) is None:
        raise _BrokenRecord(f"uri is not an at:// URI: {uri!r}")
    author = _account(view.get("author"), raw_id)
    record = view.get("record")
    if not isinstance(record, dict):
        raise _BrokenRecord("record is missing")
    text = record.get("text")
    if not isinstance(text, str) or not text.strip():
        raise _BrokenRecord("post has no text (image-only or empty)")
    reply = record.get("reply") if isinstance(record.get("reply"), dict) else {}
    parent = (reply.get("parent") or {}).get("uri") if isinstance(reply.get("parent"), dict) else None
    root = (reply.get("root") or {}).get("uri") if isinstance(reply.get("root"), dict) else None
    langs = record.get("langs") if isinstance(record.get("langs"), list) else []
    post = Post(
        source=PLATFORM,
        post_id=uri,
        author_id=author.account_id,
        text=text,
        created_at=_parse_time(record.get("createdAt")) or _parse_time(view.get("indexedAt")),
        url=web_url(author.handle, uri),
        lang_hint=str(langs[0]).split("-")[0].lower() if langs else None,
        parent_post_id=parent,
        conversation_id=root or uri,
        like_count=_count(view, "likeCount"),
        repost_count=_count(view, "repostCount"),
        reply_count=_count(view, "replyCount"),
        quote_count=_count(view, "quoteCount"),
        raw_id=raw_id,
    )
    return post, author, record


def _quoted_uri(record: dict[str, Any]) -> str | None:
    embed = record.get("embed") if isinstance(record.get("embed"), dict) else {}
    kind = embed.get("$type")
    if kind == "app.bsky.embed.record":
        ref = embed.get("record")
    elif kind == "app.bsky.embed.recordWithMedia":
        ref = (embed.get("record") or {}).get("record") if isinstance(embed.get("record"), dict) else None
    else:
        return None
    uri = ref.get("uri") if isinstance(ref, dict) else None
    # Record embeds also point at feeds, lists and starter packs; only posts are quotes.
    return uri if isinstance(uri, str) and f"/{_POST_COLLECTION}/" in uri else None


def _record_edges(record: dict[str, Any], post: Post) -> Iterator[Interaction]:
    actor = post.author_id or ""
    if post.parent_post_id and (target := did_of(post.parent_post_id)):
        yield Interaction(PLATFORM, "reply", actor, target, post.post_id, post.parent_post_id, post.created_at)
    quoted = _quoted_uri(record)
    if quoted and (target := did_of(quoted)):
        yield Interaction(PLATFORM, "quote", actor, target, post.post_id, quoted, post.created_at)
    for facet in record.get("facets") or []:
        for feature in (facet.get("features") or []) if isinstance(facet, dict) else []:
            if isinstance(feature, dict) and feature.get("$type") == "app.bsky.richtext.facet#mention":
                if str(feature.get("did", "")).startswith("did:"):
                    yield Interaction(PLATFORM, "mention", actor, feature["did"], post.post_id, None, post.created_at)


# --- live connector -----------------------------------------------------------------------------


class BlueskyConnector:
    """Read Bluesky through atproto's Client pointed at an AppView; raw bodies are captured from its httpx client.

    atproto's httpx client sends over the shared HttpClient (HttpClientTransport), so its traffic gets
    the same URL checks, address pinning, proxy setting and per-download size and time limits.
    """

    name = PLATFORM
    version = VERSION
    connector = "bluesky"

    def __init__(
        self, stream: str, source_name: str, *, base_url: str = PUBLIC_APPVIEW, handle: str | None = None,
        app_password: str | None = None, limit: int = MAX_LIMIT, max_pages: int | None = None, timeout: float = 15.0,
        max_retries: int = 4, backoff_base: float = 1.0, max_wait: float = 900.0, max_rate_limit_waits: int = 3,
        sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.time,
        max_bytes: int = MAX_BYTES, max_seconds: float = MAX_SECONDS,
    ) -> None:
        kind, _, value = stream.partition(":") if stream.split(":", 1)[0] in ("search", "author", "thread") else ("search", ":", stream)
        if not value.strip():
            raise ValueError(f"Bluesky stream {stream!r} names nothing to read (search:<q>, author:<handle>, thread:<at-uri>)")
        if kind == "thread" and did_of(value.strip()) is None:
            raise ValueError(f"Bluesky thread stream needs an at:// post URI with a DID, got {value!r}")
        if bool(handle) != bool(app_password):
            raise MissingCredential("Bluesky app password" if handle else "Bluesky handle",
                                    "RESONANZ_BLUESKY_APP_PASSWORD" if handle else "RESONANZ_BLUESKY_HANDLE")
        self.kind, self.value = kind, value.strip()
        self.stream = stream
        self.source_name = source_name
        self.base_url = base_url.rstrip("/")
        self.handle, self.app_password = handle, app_password
        self.limit = max(1, min(limit, MAX_LIMIT))
        self.max_pages = max_pages
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.max_wait = max_wait
        self.max_rate_limit_waits = max_rate_limit_waits
        self.sleep = sleep
        self.clock = clock
        self.max_bytes = max_bytes
        self.max_seconds = max_seconds
        self.stats = HttpStats()
        self._client: Any = None
        self._last_body = ""

    def _atproto(self) -> Any:
        if self._client is None:
            try:
                from atproto import Client
                from atproto_client.request import Request
            except ImportError as exc:  # an optional dependency: say how to get it
                raise ImportError("the bluesky connector needs the AT Protocol SDK: pip install 'atproto==0.0.73'") from exc

            def keep(response: Any) -> None:
                response.read()
                self.stats.requests += 1
                self._last_body = response.text

            # The shared client checks every hop, pins the address and cuts off oversized or endless bodies;
            # atproto keeps its own error mapping, and _call its retries.
            http = HttpClient(timeout=self.timeout, max_bytes=self.max_bytes, max_seconds=self.max_seconds)
            request = Request(timeout=self.timeout, transport=HttpClientTransport(http), event_hooks={"response": [keep]})
            request.add_additional_header("User-Agent", USER_AGENT)
            self._client = Client(base_url=self.base_url, request=request)
            if self.handle:
                self._call(lambda: self._client.login(self.handle, self.app_password))
        return self._client

    def fetch(self, cursor: Cursor | None) -> Iterator[Page]:
        """Yield pages newest first back to what the cursor has seen; resume an interrupted walk by its cursor.

        A body over the size or time limit ends the stream for this run: it is logged, counted in
        `stats.skipped` and the cursor stays at the last stored page (the next cursor is inside the
        body that was not read), so the rest of the collection goes on.
        """
        yield from skip_oversized(self._walk(cursor), self.stats.skip, log, f"bluesky stream {self.stream}")

    def _walk(self, cursor: Cursor | None) -> Iterator[Page]:
        state = dict(cursor.state) if cursor else {}
        client = self._atproto()
        if self.kind == "thread":
            self._call(lambda: client.app.bsky.feed.get_post_thread({"uri": self.value, "depth": 100, "parent_height": 100}))
            yield self._page("app.bsky.feed.getPostThread", {"fetched": self.value})
            return
        pages = 0
        while self.max_pages is None or pages < self.max_pages:
            page_cursor, since, run_newest = state.get("cursor"), state.get("since"), state.get("run_newest")
            if self.kind == "search":
                params = {"q": self.value, "sort": "latest", "limit": self.limit, "cursor": page_cursor, "since": since}
                self._call(lambda: client.app.bsky.feed.search_posts({k: v for k, v in params.items() if v is not None}))
                nsid, items_key = "app.bsky.feed.searchPosts", "posts"
            else:
                params = {"actor": self.value, "limit": self.limit, "cursor": page_cursor}
                self._call(lambda: client.app.bsky.feed.get_author_feed({k: v for k, v in params.items() if v is not None}))
                nsid, items_key = "app.bsky.feed.getAuthorFeed", "feed"
            try:
                payload = json.loads(self._last_body)
            except json.JSONDecodeError:
                payload = None
            if not isinstance(payload, dict):
                # Keep the unusable body in quarantine; the cursor stays where it was.
                yield self._page(nsid, {k: v for k, v in state.items() if v is not None})
                raise MalformedPayload(f"{self.base_url}/xrpc/{nsid} returned a body that is not a JSON object")
            items = payload.get(items_key) if isinstance(payload, dict) and isinstance(payload.get(items_key), list) else []
            times = [t for t in (_item_time(item) for item in items) if t]
            run_newest = max([run_newest] + times if run_newest else times, default=None)
            next_cursor = payload.get("cursor") if isinstance(payload, dict) else None
            # Author feeds have no `since`: stop once the walk reaches what an earlier run already stored.
            reached_old = self.kind == "author" and since is not None and any(t <= since for t in times)
            finished = not items or not next_cursor or reached_old
            if finished:
                state = {"since": run_newest or since}
            else:
                state = {"cursor": next_cursor, "since": since, "run_newest": run_newest}
            yield self._page(nsid, {k: v for k, v in state.items() if v is not None})
            pages += 1
            if finished:
                return

    def _page(self, nsid: str, state: dict[str, Any]) -> Page:
        endpoint = f"{self.base_url}/xrpc/{nsid}?{'q' if self.kind == 'search' else 'actor' if self.kind == 'author' else 'uri'}={self.value}"
        provenance = Provenance(self.connector, endpoint, datetime.now(timezone.utc), self.version)
        return parse_bluesky_page(self._last_body, provenance, Cursor(self.source_name, self.stream, state))

    def _call(self, request: Callable[[], Any]) -> None:
        """Run one atproto call under our retry and rate-limit policy; map its errors to ours."""
        from atproto_client import exceptions

        attempt = 0
        waits = 0
        while True:
            try:
                request()
                return
            except (exceptions.ModelError, ValueError):
                # The body does not match atproto's models (a newer lexicon): our parser is lenient, keep it.
                return
            except exceptions.RateLimitExceededError as exc:
                wait = self._reset_wait(exc.response, attempt)
                if wait > self.max_wait or waits >= self.max_rate_limit_waits:
                    raise RateLimited(f"{self.base_url} is rate limited; retry in {wait:.0f}s", wait) from exc
                self.stats.rate_limit_waits += 1
                self._sleep(wait)
                waits += 1
            except exceptions.UnauthorizedError as exc:
                raise Forbidden(f"{self.base_url} refused access: {exc} (set RESONANZ_BLUESKY_HANDLE and "
                                f"RESONANZ_BLUESKY_APP_PASSWORD if the AppView needs a login)") from exc
            except exceptions.BadRequestError as exc:
                # XRPC reports unknown actors and deleted posts as 400 with a named error.
                raise NotFound(f"{self.base_url} rejected {self.kind} {self.value!r}: {exc}") from exc
            except (exceptions.NetworkError, exceptions.InvokeTimeoutError, exceptions.RequestException) as exc:
                status = exc.response.status_code if getattr(exc, "response", None) is not None else None
                if status == 404:
                    raise NotFound(f"{self.base_url}: not found ({exc})") from exc
                if status is not None and status < 500 and status != 409:
                    raise TransientError(f"{self.base_url} returned {status}: {exc}") from exc
                if attempt >= self.max_retries:
                    raise TransientError(f"{self.base_url} failed after {attempt + 1} attempts: {exc!r}") from exc
                self.stats.retries += 1
                self._sleep(min(60.0, self.backoff_base * 2**attempt))
                attempt += 1

    def _reset_wait(self, response: Any, attempt: int) -> float:
        headers = getattr(response, "headers", None) or {}
        retry_after = headers.get("retry-after")
        if retry_after and str(retry_after).isdigit():
            return float(retry_after)
        reset = headers.get("ratelimit-reset")  # epoch seconds, per the AT Protocol rate-limit headers
        if reset and str(reset).isdigit():
            return max(0.0, float(reset) - self.clock() + 1.0)
        return min(60.0, self.backoff_base * 2**attempt)

    def _sleep(self, seconds: float) -> None:
        self.stats.waited_seconds += seconds
        self.sleep(seconds)


def _item_time(item: Any) -> str | None:
    """Return a feed or search item's indexedAt (ISO strings compare in time order)."""
    view = item.get("post") if isinstance(item, dict) and "post" in item else item
    value = view.get("indexedAt") if isinstance(view, dict) else None
    return value if isinstance(value, str) else None
