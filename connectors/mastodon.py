"""Mastodon via Mastodon.py: hashtag, account and public timelines plus reply trees, on several instances at once.

A stream names one or more `instance|target` pairs separated by commas, for example
`https://mastodon.social|#bahn, https://chaos.social|@db_presse@chaos.social, https://norden.social|public`.
Targets: `#tag` (hashtag timeline), `@acct` (account timeline), `public` / `local` (public timelines)
and `thread:<status id>` (one reply tree via /context).

Ids: an account is its fully qualified handle (`user@host`), the same on every instance; a post is
`host/status-id`, because status ids are local to the instance that served them (the status `url`
is the same everywhere, so a post seen through two instances can still be matched downstream).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlparse

from connectors.base import MALFORMED, Forbidden, MalformedPayload, NotFound, RateLimited, TransientError, open_json_page
from connectors.http import USER_AGENT, HttpClient, HttpStats, RequestsAdapter, allow_private_from_env, check_url
from connectors.records import Account, Cursor, Interaction, Page, Post, Provenance, Quarantined, RawPayload
from connectors.rss import html_text_and_links

PLATFORM = "mastodon"
VERSION = "0.1.0"
MAX_LIMIT = 40  # the API caps statuses per timeline page at 40


class _BrokenRecord(ValueError):
    """A status whose fields cannot be trusted; it goes to quarantine."""


@dataclass(frozen=True, slots=True)
class MastodonTarget:
    """One instance and what to read there."""

    instance: str  # base URL, e.g. https://mastodon.social
    target: str  # "#tag", "@acct", "public", "local" or "thread:<id>"

    @property
    def key(self) -> str:
        return f"{self.instance}|{self.target}"

    @property
    def host(self) -> str:
        return urlparse(self.instance).netloc.lower()


def parse_stream(stream: str) -> list[MastodonTarget]:
    """Split `instance|target, instance|target` into targets; raise ValueError on a malformed part."""
    targets = []
    for part in (p.strip() for p in stream.split(",")):
        if not part:
            continue
        instance, sep, target = part.partition("|")
        instance, target = instance.strip().rstrip("/"), target.strip()
        if not sep or urlparse(instance).scheme not in ("http", "https") or not target:
            raise ValueError(f"Mastodon stream part {part!r} is not 'https://instance|target'")
        if not (target.startswith(("#", "@", "thread:")) or target in ("public", "local")):
            raise ValueError(f"Mastodon target {target!r} must be #tag, @acct, public, local or thread:<status id>")
        targets.append(MastodonTarget(instance, target))
    if not targets:
        raise ValueError("Mastodon stream names no 'instance|target'")
    return targets


# --- pure parsing -------------------------------------------------------------------------------


def parse_mastodon_page(body: str, host: str, provenance: Provenance, cursor: Cursor, focus: str | None = None) -> Page:
    """Turn one statuses list, single status or /context body (of status `focus`) from `host` into a Page."""
    page, payload = open_json_page(PLATFORM, body, provenance, cursor)
    if payload is MALFORMED:
        return page
    raw = page.raw
    conversation: str | None = None
    if isinstance(payload, dict) and ("ancestors" in payload or "descendants" in payload):
        ancestors, descendants = _as_list(payload.get("ancestors")), _as_list(payload.get("descendants"))
        statuses = ancestors + descendants
        # A reply tree's root is its first ancestor; a context without ancestors is rooted at its focus.
        root = ancestors[0] if ancestors else None
        conversation = _post_id(host, root["id"]) if isinstance(root, dict) and root.get("id") else (_post_id(host, focus) if focus else None)
    elif isinstance(payload, list):
        statuses = payload
    elif isinstance(payload, dict) and "content" in payload:
        statuses = [payload]
    else:
        page.quarantined.append(_quarantine(raw, "response is neither a status list, a status nor a context", body))
        return page

    local_accounts = _local_account_map(statuses, host)
    accounts: dict[str, Account] = {}
    seen_posts: set[str] = set()
    seen_edges: set[tuple[str, str, str, str]] = set()

    def add_status(status: Any) -> Post | None:
        post, author = _parse_status(status, host, raw.raw_id)
        if conversation:
            post.conversation_id = conversation
        accounts.setdefault(author.account_id, author)
        if post.post_id not in seen_posts:
            seen_posts.add(post.post_id)
            page.posts.append(post)
        return post

    def add_edge(edge: Interaction | None) -> None:
        if edge is None or edge.src_account_id == edge.dst_account_id:
            return
        key = (edge.kind, edge.src_account_id, edge.dst_account_id, edge.post_id)
        if key not in seen_edges:
            seen_edges.add(key)
            page.interactions.append(edge)

    for status in statuses:
        try:
            if not isinstance(status, dict):
                raise _BrokenRecord("not a JSON object")
            reblog = status.get("reblog")
            if isinstance(reblog, dict):
                # A boost has no text of its own: store the boosted post, and the boost as a repost edge.
                original = add_status(reblog)
                booster = _account(status.get("account"), host, raw.raw_id)
                accounts.setdefault(booster.account_id, booster)
                add_edge(Interaction(PLATFORM, "repost", booster.account_id, original.author_id or "",
                                     _post_id(host, _required(status, "id")), original.post_id,
                                     _parse_time(status.get("created_at"))))
                continue
            post = add_status(status)
            for edge in _edges(status, post, host, local_accounts):
                add_edge(edge)
            quoted = _quoted_status(status)
            if quoted is not None:
                target = add_status(quoted)
                add_edge(Interaction(PLATFORM, "quote", post.author_id or "", target.author_id or "",
                                     post.post_id, target.post_id, post.created_at))
        except _BrokenRecord as exc:
            page.quarantined.append(_quarantine(raw, f"status: {exc}", json.dumps(status, ensure_ascii=False)))
    page.accounts.extend(accounts.values())
    return page


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _quarantine(raw: RawPayload, reason: str, fragment: str) -> Quarantined:
    return Quarantined(source=PLATFORM, raw_id=raw.raw_id, reason=reason, fragment=fragment)


def _post_id(host: str, status_id: Any) -> str:
    return f"{host}/{status_id}"


def _required(item: dict[str, Any], key: str) -> str:
    value = item.get(key)
    if not isinstance(value, (str, int)) or isinstance(value, bool) or str(value) == "":
        raise _BrokenRecord(f"{key} is missing or not an id: {value!r}")
    return str(value)


def _qualified(acct: Any, host: str) -> str:
    if not isinstance(acct, str) or not acct:
        raise _BrokenRecord(f"acct is missing: {acct!r}")
    # Local accounts come without a domain; qualify them so the id is the same on every instance.
    return (acct if "@" in acct else f"{acct}@{host}").lower()


def _parse_time(value: Any) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _BrokenRecord(f"created_at is not a string: {value!r}")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise _BrokenRecord(f"created_at is not ISO-8601: {value!r}") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _count(item: dict[str, Any], key: str) -> int | None:
    value = item.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _account(item: Any, host: str, raw_id: str) -> Account:
    if not isinstance(item, dict):
        raise _BrokenRecord("account is not a JSON object")
    note = item.get("note")
    return Account(
        source=PLATFORM,
        account_id=_qualified(item.get("acct"), host),
        handle=_qualified(item.get("acct"), host),
        display_name=item.get("display_name") or None if isinstance(item.get("display_name"), str) else None,
        description=html_text_and_links(note)[0] or None if isinstance(note, str) else None,
        url=item.get("url") if isinstance(item.get("url"), str) else None,
        followers_count=_count(item, "followers_count"),
        following_count=_count(item, "following_count"),
        post_count=_count(item, "statuses_count"),
        created_at=_parse_time(item.get("created_at")),
        raw_id=raw_id,
    )


def _local_account_map(statuses: list[Any], host: str) -> dict[str, str]:
    """Map the instance's local account ids to qualified handles, from authors and mentions."""
    mapping: dict[str, str] = {}
    for status in statuses:
        for item in (status, status.get("reblog")) if isinstance(status, dict) else ():
            if not isinstance(item, dict):
                continue
            people = [item.get("account")] + _as_list(item.get("mentions"))
            for person in people:
                if isinstance(person, dict) and person.get("id") and isinstance(person.get("acct"), str) and person["acct"]:
                    mapping[str(person["id"])] = _qualified(person["acct"], host)
    return mapping


def _parse_status(item: dict[str, Any], host: str, raw_id: str) -> tuple[Post, Account]:
    status_id = _required(item, "id")
    author = _account(item.get("account"), host, raw_id)
    content = item.get("content")
    if not isinstance(content, str):
        raise _BrokenRecord("content is missing")
    text = html_text_and_links(content)[0]
    spoiler = item.get("spoiler_text") if isinstance(item.get("spoiler_text"), str) else ""
    if not text.strip():
        raise _BrokenRecord("status has no text (media-only or deleted)")
    parent = item.get("in_reply_to_id")
    post = Post(
        source=PLATFORM,
        post_id=_post_id(host, status_id),
        author_id=author.account_id,
        text=text,
        created_at=_parse_time(item.get("created_at")),
        url=item.get("url") or item.get("uri") or None,
        title=spoiler or None,  # a content warning reads like a title
        lang_hint=item.get("language") if isinstance(item.get("language"), str) else None,
        parent_post_id=_post_id(host, parent) if parent else None,
        like_count=_count(item, "favourites_count"),
        repost_count=_count(item, "reblogs_count"),
        reply_count=_count(item, "replies_count"),
        quote_count=_count(item, "quotes_count"),
        raw_id=raw_id,
    )
    return post, author


def _quoted_status(item: dict[str, Any]) -> dict[str, Any] | None:
    # Mastodon 4.5 quote posts: {"state": "accepted", "quoted_status": {...}}; other states hide the status.
    quote = item.get("quote")
    if isinstance(quote, dict) and quote.get("state") == "accepted" and isinstance(quote.get("quoted_status"), dict):
        return quote["quoted_status"]
    return None


def _edges(item: dict[str, Any], post: Post, host: str, local_accounts: dict[str, str]) -> Iterator[Interaction]:
    actor = post.author_id or ""
    reply_to = item.get("in_reply_to_account_id")
    if reply_to:
        # Unknown local id (parent author not in this page): keep the edge with an instance-scoped id.
        target = local_accounts.get(str(reply_to)) or f"id:{reply_to}@{host}"
        yield Interaction(PLATFORM, "reply", actor, target, post.post_id, post.parent_post_id, post.created_at)
    for mention in _as_list(item.get("mentions")):
        if isinstance(mention, dict) and isinstance(mention.get("acct"), str) and mention["acct"]:
            yield Interaction(PLATFORM, "mention", actor, _qualified(mention["acct"], host), post.post_id, None, post.created_at)


# --- live connector -----------------------------------------------------------------------------


def _reset_epoch(value: str | None) -> float | None:
    """Read X-RateLimit-Reset: Mastodon sends an ISO-8601 time, some forks an epoch."""
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).timestamp()


class _Instance:
    """One Mastodon.py client per instance, with its own rate-limit state and the last raw response."""

    def __init__(self, base_url: str, access_token: str | None, timeout: float, stats: HttpStats) -> None:
        import requests

        try:
            from mastodon import Mastodon
        except ImportError as exc:  # an optional dependency: say how to get it
            raise ImportError("the mastodon connector needs Mastodon.py: pip install 'Mastodon.py==2.3.3'") from exc

        self.last_response: requests.Response | None = None
        self.stats = stats
        session = requests.Session()
        # Mastodon.py's own requests traffic goes over the shared client: URL checks on every hop,
        # connections pinned to the checked address (no DNS rebinding), size and time limits.
        self.adapter = RequestsAdapter(HttpClient(timeout=timeout))
        session.mount("https://", self.adapter)
        session.mount("http://", self.adapter)
        session.hooks["response"].append(self._keep)
        # "throw": Mastodon.py only raises on 429; waiting is ours, on the injected clock.
        self.api = Mastodon(
            api_base_url=base_url, access_token=access_token, ratelimit_method="throw", request_timeout=timeout,
            version_check_mode="none", session=session, user_agent=USER_AGENT,
        )
        self.resume_at: float | None = None  # when X-RateLimit-Remaining hit 0: the reset time

    def _keep(self, response: Any, *args: Any, **kwargs: Any) -> None:
        # Mastodon.py may send more than one request per call (it reads /api/v2/instance once).
        self.stats.requests += 1
        self.last_response = response


class MastodonConnector:
    """Read timelines of one or more instances through Mastodon.py; each page keeps its raw JSON body."""

    name = PLATFORM
    version = VERSION
    connector = "mastodon"

    def __init__(
        self, stream: str, source_name: str, *, access_token: str | None = None, limit: int = MAX_LIMIT,
        max_pages: int | None = None, threads: bool = False, timeout: float = 15.0, max_retries: int = 4,
        backoff_base: float = 1.0, max_wait: float = 900.0, max_rate_limit_waits: int = 3,
        sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.time,
    ) -> None:
        self.targets = parse_stream(stream)
        self.stream = stream
        self.source_name = source_name
        self.access_token = access_token
        self.limit = max(1, min(limit, MAX_LIMIT))
        self.max_pages = max_pages
        self.threads = threads
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.max_wait = max_wait
        self.max_rate_limit_waits = max_rate_limit_waits
        self.sleep = sleep
        self.clock = clock
        self.stats = HttpStats()
        self._instances: dict[str, _Instance] = {}

    def fetch(self, cursor: Cursor | None) -> Iterator[Page]:
        """Yield pages per target, newest first back to the cursor's since_id; resume an interrupted walk."""
        states: dict[str, dict[str, Any]] = {
            key: dict(value) for key, value in ((cursor.state.get("targets") if cursor else None) or {}).items()
        }
        for target in self.targets:
            yield from self._fetch_target(target, states)

    def _cursor(self, states: dict[str, dict[str, Any]]) -> Cursor:
        clean = {key: {k: v for k, v in value.items() if v is not None} for key, value in states.items()}
        return Cursor(self.source_name, self.stream, {"targets": clean})

    def _instance(self, base_url: str) -> _Instance:
        if base_url not in self._instances:
            # Same policy as the shared client: no private or loopback instance unless allowed.
            check_url(base_url, allow_private_from_env())
            self._instances[base_url] = _Instance(base_url, self.access_token, self.timeout, self.stats)
        return self._instances[base_url]

    def _fetch_target(self, target: MastodonTarget, states: dict[str, dict[str, Any]]) -> Iterator[Page]:
        instance = self._instance(target.instance)
        state = states.setdefault(target.key, {})
        if target.target.startswith("thread:"):
            status_id = target.target.removeprefix("thread:")
            yield from self._context_page(instance, target, status_id, states, focus=status_id)
            return
        account_id = state.get("account_id")
        if target.target.startswith("@") and not account_id:
            account = self._call(instance, lambda: instance.api.account_lookup(target.target.removeprefix("@")))
            account_id = state["account_id"] = str(account["id"])
        pages = 0
        while self.max_pages is None or pages < self.max_pages:
            since_id, max_id = state.get("since_id"), state.get("max_id")
            kwargs = {"limit": self.limit, "since_id": since_id, "max_id": max_id}
            endpoint = f"{target.instance}{self._endpoint(target, account_id)}"
            try:
                statuses = self._call(instance, lambda: self._timeline(instance, target, account_id, kwargs))
            except MalformedPayload as exc:
                # Keep the unusable body in quarantine; the cursor stays where it was.
                provenance = Provenance(self.connector, endpoint, datetime.now(timezone.utc), self.version)
                yield parse_mastodon_page(getattr(exc, "body", ""), target.host, provenance, self._cursor(states))
                raise
            body = self._body(instance)
            items = list(statuses)
            next_info = getattr(statuses, "_pagination_next", None)
            next_max_id = str(next_info["max_id"]) if next_info and next_info.get("max_id") is not None else None
            run_newest = state.get("run_newest_id") or (str(items[0]["id"]) if items else None)
            finished = not items or not next_max_id or len(items) < self.limit
            if finished:
                state.update(since_id=run_newest or since_id, max_id=None, run_newest_id=None)
            else:
                state.update(max_id=next_max_id, run_newest_id=run_newest)
            provenance = Provenance(self.connector, endpoint, datetime.now(timezone.utc), self.version)
            page = parse_mastodon_page(body, target.host, provenance, self._cursor(states))
            yield page
            pages += 1
            if self.threads:
                for status in items:
                    original = status.get("reblog") or status
                    if original.get("replies_count") or original.get("in_reply_to_id"):
                        yield from self._context_page(instance, target, str(original["id"]), states, focus=str(original["id"]))
            if finished:
                return

    def _timeline(self, instance: _Instance, target: MastodonTarget, account_id: str | None, kwargs: dict[str, Any]) -> Any:
        api = instance.api
        if target.target.startswith("#"):
            return api.timeline_hashtag(target.target.removeprefix("#"), **kwargs)
        if target.target.startswith("@"):
            return api.account_statuses(account_id, **kwargs)
        return api.timeline_public(local=target.target == "local", **kwargs)

    @staticmethod
    def _endpoint(target: MastodonTarget, account_id: str | None) -> str:
        if target.target.startswith("#"):
            return f"/api/v1/timelines/tag/{target.target.removeprefix('#')}"
        if target.target.startswith("@"):
            return f"/api/v1/accounts/{account_id}/statuses"
        return "/api/v1/timelines/public" + ("?local=true" if target.target == "local" else "")

    def _context_page(self, instance: _Instance, target: MastodonTarget, status_id: str,
                      states: dict[str, dict[str, Any]], focus: str) -> Iterator[Page]:
        if target.target.startswith("thread:"):
            # /context leaves out the status itself: fetch it too, so the tree's focus is stored.
            states[target.key] = {"fetched": status_id}
            self._call(instance, lambda: instance.api.status(status_id))
            endpoint = f"{target.instance}/api/v1/statuses/{status_id}"
            provenance = Provenance(self.connector, endpoint, datetime.now(timezone.utc), self.version)
            yield parse_mastodon_page(self._body(instance), target.host, provenance, self._cursor(states))
        self._call(instance, lambda: instance.api.status_context(status_id))
        endpoint = f"{target.instance}/api/v1/statuses/{status_id}/context"
        provenance = Provenance(self.connector, endpoint, datetime.now(timezone.utc), self.version)
        yield parse_mastodon_page(self._body(instance), target.host, provenance, self._cursor(states), focus=focus)

    def _body(self, instance: _Instance) -> str:
        response = instance.last_response
        return response.text if response is not None else ""

    def _call(self, instance: _Instance, request: Callable[[], Any]) -> Any:
        """Run one Mastodon.py call with our retry, backoff and rate-limit policy; map its errors to ours."""
        from mastodon import (
            MastodonAPIError, MastodonNetworkError, MastodonNotFoundError, MastodonRatelimitError,
            MastodonServerError, MastodonUnauthorizedError,
        )

        attempt = 0
        waits = 0
        while True:
            if instance.resume_at is not None:
                wait = instance.resume_at - self.clock()
                instance.resume_at = None
                if wait > 0:
                    self._rate_limit_wait(wait)
            try:
                result = request()
            except MastodonRatelimitError as exc:
                wait = self._reset_wait(instance, attempt)
                if wait > self.max_wait or waits >= self.max_rate_limit_waits:
                    raise RateLimited(f"{instance.api.api_base_url} is rate limited; retry in {wait:.0f}s", wait) from exc
                self._rate_limit_wait(wait)
                waits += 1
                continue
            except (MastodonServerError, MastodonNetworkError) as exc:
                if instance.adapter.refused is not None:
                    # A refused address or oversized body is final: Mastodon.py only wrapped it.
                    raise instance.adapter.refused from exc
                if attempt >= self.max_retries:
                    raise TransientError(f"{instance.api.api_base_url} failed after {attempt + 1} attempts: {exc}") from exc
                self.stats.retries += 1
                self._sleep(min(60.0, self.backoff_base * 2**attempt))
                attempt += 1
                continue
            except MastodonNotFoundError as exc:
                raise NotFound(f"{instance.api.api_base_url}: not found ({exc})") from exc
            except MastodonUnauthorizedError as exc:
                raise Forbidden(f"{instance.api.api_base_url} refused access (401): this instance needs a login for "
                                f"its timelines; set RESONANZ_MASTODON_ACCESS_TOKEN") from exc
            except MastodonAPIError as exc:
                status = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], int) else None
                if status == 403:
                    raise Forbidden(f"{instance.api.api_base_url} refused access (403): {exc}") from exc
                body = self._body(instance)
                error = MalformedPayload(f"{instance.api.api_base_url} returned an unusable body: {body[:200]!r}")
                error.body = body  # type: ignore[attr-defined]  # kept so the caller can quarantine it
                raise error from exc
            self._note_remaining(instance)
            return result

    def _note_remaining(self, instance: _Instance) -> None:
        response = instance.last_response
        if response is None:
            return
        remaining = response.headers.get("X-RateLimit-Remaining")
        if remaining is not None and remaining.strip() == "0":
            instance.resume_at = _reset_epoch(response.headers.get("X-RateLimit-Reset"))

    def _reset_wait(self, instance: _Instance, attempt: int) -> float:
        response = instance.last_response
        reset = _reset_epoch(response.headers.get("X-RateLimit-Reset")) if response is not None else None
        retry_after = response.headers.get("Retry-After") if response is not None else None
        if retry_after and retry_after.isdigit():
            return float(retry_after)
        if reset is not None:
            return max(0.0, reset - self.clock() + 1.0)
        return min(60.0, self.backoff_base * 2**attempt)

    def _rate_limit_wait(self, seconds: float) -> None:
        self.stats.rate_limit_waits += 1
        self._sleep(seconds)

    def _sleep(self, seconds: float) -> None:
        self.stats.waited_seconds += seconds
        self.sleep(seconds)
