"""X (Twitter) API v2: a pure page parser, a replay connector for recorded pages, and the live connector."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import requests

from connectors.base import (
    MALFORMED,
    open_json_page,
    skip_oversized,
    Forbidden,
    MalformedPayload,
    MissingCredential,
    NotFound,
    RateLimited,
    TransientError,
)
from connectors.http import MAX_BYTES, MAX_SECONDS, HttpClient, HttpStats, RequestsAdapter, rate_limit_wait_seconds
from connectors.records import Account, Cursor, Interaction, Page, Post, Provenance, Quarantined, RawPayload

PLATFORM = "x"
VERSION = "0.1.0"

# Everything the parser needs to derive reply, quote, repost and mention edges and account metrics.
TWEET_FIELDS = [
    "author_id", "conversation_id", "created_at", "entities", "in_reply_to_user_id",
    "lang", "public_metrics", "referenced_tweets",
]
USER_FIELDS = ["created_at", "description", "location", "name", "public_metrics", "url", "username", "verified"]
EXPANSIONS = [
    "author_id", "entities.mentions.username", "in_reply_to_user_id",
    "referenced_tweets.id", "referenced_tweets.id.author_id",
]
_REFERENCE_KINDS = {"replied_to": "reply", "quoted": "quote", "retweeted": "repost"}
TWEEPY_HOST = "https://api.twitter.com"  # tweepy.Client.request hard-codes it
log = logging.getLogger(__name__)


class _RedactSecrets(logging.Filter):
    """Replace known secrets in log records: tweepy logs request headers (the bearer token) at DEBUG."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if any(secret in message for secret in self.secrets):
            for secret in self.secrets:
                message = message.replace(secret, "**********")
            record.msg, record.args = message, None
        return True


_REDACT = _RedactSecrets()
logging.getLogger("tweepy.client").addFilter(_REDACT)


class _ApiSession(requests.Session):
    """tweepy's session, sending to `api_base` instead of the host tweepy hard-codes.

    The default is tweepy's own host; a replay server or X's newer api.x.com can be named instead.
    """

    def __init__(self, api_base: str) -> None:
        super().__init__()
        self.api_base = api_base.rstrip("/")

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        if isinstance(url, str) and url.startswith(TWEEPY_HOST + "/"):
            url = self.api_base + url.removeprefix(TWEEPY_HOST)
        return super().request(method, url, *args, **kwargs)


class _BrokenRecord(ValueError):
    """A tweet or user whose fields cannot be trusted; it goes to quarantine."""


def parse_x_page(body: str, provenance: Provenance, cursor: Cursor) -> Page:
    """Turn one X API v2 tweet-search/timeline response body into a Page, quarantining bad tweets."""
    page, payload = open_json_page(PLATFORM, body, provenance, cursor)
    if payload is MALFORMED:
        return page
    raw = page.raw
    if not isinstance(payload, dict):
        page.quarantined.append(_quarantine(raw, "response is not a JSON object", body))
        return page

    includes = payload.get("includes") if isinstance(payload.get("includes"), dict) else {}
    users = _parse_users(_as_list(includes.get("users")), raw, page)
    handle_to_id = {account.handle.lower(): account.account_id for account in users.values() if account.handle}
    referenced_authors = {
        str(t["id"]): str(t["author_id"])
        for t in _as_list(includes.get("tweets"))
        if isinstance(t, dict) and t.get("id") and t.get("author_id")
    }
    seen_posts: set[str] = set()
    seen_edges: set[tuple[str, str, str, str, str | None]] = set()
    for item in _as_list(payload.get("data")):
        try:
            post = _parse_tweet(item, raw.raw_id)
        except _BrokenRecord as exc:
            page.quarantined.append(_quarantine(raw, f"tweet: {exc}", json.dumps(item, ensure_ascii=False)))
            continue
        if post.post_id in seen_posts:
            continue
        seen_posts.add(post.post_id)
        author = users.get(post.author_id or "")
        if author and author.handle:
            post.url = f"https://x.com/{author.handle}/status/{post.post_id}"
        page.posts.append(post)
        for edge in _edges(item, post, referenced_authors, handle_to_id):
            key = (edge.kind, edge.src_account_id, edge.dst_account_id, edge.post_id, edge.target_post_id)
            if key not in seen_edges:
                seen_edges.add(key)
                page.interactions.append(edge)
    page.accounts.extend(users.values())
    for error in _as_list(payload.get("errors")):
        # Partial errors (deleted or protected referenced tweets) are kept, not dropped silently.
        title = (error.get("title") or error.get("detail") or "unknown") if isinstance(error, dict) else "unknown"
        page.quarantined.append(_quarantine(raw, f"api error: {title}", json.dumps(error, ensure_ascii=False)))
    return page


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _quarantine(raw: RawPayload, reason: str, fragment: str) -> Quarantined:
    return Quarantined(source=PLATFORM, raw_id=raw.raw_id, reason=reason, fragment=fragment)


def _parse_time(value: Any) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _BrokenRecord(f"created_at is not a string: {value!r}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise _BrokenRecord(f"created_at is not ISO-8601: {value!r}") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _optional_id(item: dict[str, Any], key: str) -> str | None:
    value = item.get(key)
    if value is None:
        return None
    if not isinstance(value, (str, int)) or isinstance(value, bool) or str(value) == "":
        raise _BrokenRecord(f"{key} is not an id: {value!r}")
    return str(value)


def _metric(metrics: dict[str, Any], key: str) -> int | None:
    value = metrics.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _parse_tweet(item: Any, raw_id: str) -> Post:
    if not isinstance(item, dict):
        raise _BrokenRecord("not a JSON object")
    post_id = _optional_id(item, "id")
    if post_id is None:
        raise _BrokenRecord("missing id")
    text = item.get("text")
    if not isinstance(text, str) or not text.strip():
        raise _BrokenRecord("missing or empty text")
    references = item.get("referenced_tweets")
    if references is not None and not (
        isinstance(references, list) and all(isinstance(r, dict) and r.get("id") and r.get("type") for r in references)
    ):
        raise _BrokenRecord(f"referenced_tweets is malformed: {references!r}")
    metrics = item.get("public_metrics") if isinstance(item.get("public_metrics"), dict) else {}
    parent = next((str(r["id"]) for r in references or [] if r["type"] == "replied_to"), None)
    return Post(
        source=PLATFORM,
        post_id=post_id,
        author_id=_optional_id(item, "author_id"),
        text=text,
        created_at=_parse_time(item.get("created_at")),
        url=f"https://x.com/i/web/status/{post_id}",
        lang_hint=item.get("lang") if isinstance(item.get("lang"), str) else None,
        parent_post_id=parent,
        conversation_id=_optional_id(item, "conversation_id"),
        like_count=_metric(metrics, "like_count"),
        repost_count=_metric(metrics, "retweet_count"),
        reply_count=_metric(metrics, "reply_count"),
        quote_count=_metric(metrics, "quote_count"),
        raw_id=raw_id,
    )


def _parse_users(items: list[Any], raw: RawPayload, page: Page) -> dict[str, Account]:
    accounts: dict[str, Account] = {}
    for item in items:
        try:
            if not isinstance(item, dict):
                raise _BrokenRecord("not a JSON object")
            account_id = _optional_id(item, "id")
            if account_id is None:
                raise _BrokenRecord("missing id")
            metrics = item.get("public_metrics") if isinstance(item.get("public_metrics"), dict) else {}
            verified = item.get("verified")
            accounts[account_id] = Account(
                source=PLATFORM,
                account_id=account_id,
                handle=item.get("username") if isinstance(item.get("username"), str) else None,
                display_name=item.get("name") if isinstance(item.get("name"), str) else None,
                description=item.get("description") if isinstance(item.get("description"), str) else None,
                location=item.get("location") if isinstance(item.get("location"), str) else None,
                url=item.get("url") or None if isinstance(item.get("url"), str) else None,
                followers_count=_metric(metrics, "followers_count"),
                following_count=_metric(metrics, "following_count"),
                post_count=_metric(metrics, "tweet_count"),
                created_at=_parse_time(item.get("created_at")),
                verified=verified if isinstance(verified, bool) else None,
                raw_id=raw.raw_id,
            )
        except _BrokenRecord as exc:
            page.quarantined.append(_quarantine(raw, f"user: {exc}", json.dumps(item, ensure_ascii=False)))
    return accounts


def _edges(
    item: dict[str, Any], post: Post, referenced_authors: dict[str, str], handle_to_id: dict[str, str]
) -> Iterator[Interaction]:
    actor = post.author_id
    if actor is None:
        return

    def edge(kind: str, target_account: str | None, target_post: str | None) -> Interaction | None:
        if not target_account or target_account == actor:
            return None
        return Interaction(PLATFORM, kind, actor, target_account, post.post_id, target_post, post.created_at)

    replied_to_user = item.get("in_reply_to_user_id")
    has_reply_reference = False
    for reference in _as_list(item.get("referenced_tweets")):
        ref_type = reference.get("type") if isinstance(reference, dict) else None
        kind = _REFERENCE_KINDS.get(ref_type) if isinstance(ref_type, str) else None
        if kind is None or reference.get("id") is None:
            continue
        target_post = str(reference["id"])
        target_account = referenced_authors.get(target_post)
        if kind == "reply":
            has_reply_reference = True
            target_account = str(replied_to_user) if replied_to_user else target_account
        if made := edge(kind, target_account, target_post):
            yield made
    if replied_to_user and not has_reply_reference and (made := edge("reply", str(replied_to_user), None)):
        yield made
    entities = item.get("entities") if isinstance(item.get("entities"), dict) else {}
    for mention in _as_list(entities.get("mentions")):
        if not isinstance(mention, dict):
            continue
        handle = mention.get("username")
        target_account = mention.get("id") or (handle_to_id.get(handle.lower()) if isinstance(handle, str) else None)
        if made := edge("mention", str(target_account) if target_account else None, None):
            yield made


class XReplayConnector:
    """Replay recorded X API v2 response pages (page-0001.json, ...) through the live parser."""

    name = PLATFORM
    version = VERSION
    connector = "x_replay"

    def __init__(self, folder: Path, source_name: str, stream: str) -> None:
        self.folder = folder
        self.source_name = source_name
        self.stream = stream

    def fetch(self, cursor: Cursor | None) -> Iterator[Page]:
        """Yield each recorded page after the one named in the cursor, in file-name order."""
        if not self.folder.is_dir():
            raise NotFound(f"recorded X pages folder not found: {self.folder}")
        last_page = (cursor.state.get("last_page") if cursor else None) or ""
        for path in sorted(self.folder.glob("page-*.json")):
            if path.name <= last_page:
                continue
            provenance = Provenance(
                source=self.connector,
                endpoint=f"{self.stream}/{path.name}",
                retrieved_at=datetime.now(timezone.utc),
                connector_version=self.version,
            )
            next_cursor = Cursor(source=self.source_name, stream=self.stream, state={"last_page": path.name})
            yield parse_x_page(path.read_text(encoding="utf-8"), provenance, next_cursor)


class XConnector:
    """Search recent posts live through tweepy, keeping each raw JSON body; resumes via since_id/next_token.

    tweepy's requests session rides on the shared HttpClient (RequestsAdapter, as for Mastodon.py):
    URL checks, address pinning, the proxy setting and the per-download size and time limits apply.
    """

    name = PLATFORM
    version = VERSION
    connector = "x"
    endpoint = "https://api.twitter.com/2/tweets/search/recent"

    def __init__(
        self,
        query: str,
        source_name: str,
        bearer_token: str | None,
        max_results: int = 100,
        max_pages: int | None = None,
        *,
        max_wait: float = 900.0,
        max_retries: int = 3,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        timeout: float = 15.0,
        max_bytes: int = MAX_BYTES,
        max_seconds: float = MAX_SECONDS,
        api_base: str = TWEEPY_HOST,
        http: HttpClient | None = None,
    ) -> None:
        if not bearer_token:
            raise MissingCredential("X bearer token", "RESONANZ_X_BEARER_TOKEN")
        import tweepy  # imported here so replay and RSS users never pay for it

        _REDACT.secrets.add(bearer_token)

        # return_type=requests.Response keeps the body verbatim; tweepy would otherwise re-shape it.
        self.client = tweepy.Client(bearer_token=bearer_token, return_type=requests.Response, wait_on_rate_limit=False)
        session = _ApiSession(api_base)
        self.adapter = RequestsAdapter(http or HttpClient(timeout=timeout, max_bytes=max_bytes, max_seconds=max_seconds))
        session.mount("https://", self.adapter)
        session.mount("http://", self.adapter)
        self.client.session = session
        self.endpoint = f"{session.api_base}/2/tweets/search/recent"
        self.query = query
        self.source_name = source_name
        self.max_results = max_results
        self.max_pages = max_pages
        self.max_wait = max_wait
        self.max_retries = max_retries
        self.sleep = sleep
        self.clock = clock
        self.stats = HttpStats()

    def fetch(self, cursor: Cursor | None) -> Iterator[Page]:
        """Yield result pages newer than the cursor's since_id, continuing an interrupted run's next_token.

        A body over the size or time limit ends the query for this run: it is logged, counted in
        `stats.skipped` and the cursor stays at the last stored page, so the rest of the collection goes on.
        """
        yield from skip_oversized(self._walk(cursor), self.stats.skip, log, f"x query {self.query}")

    def _walk(self, cursor: Cursor | None) -> Iterator[Page]:
        state = dict(cursor.state) if cursor else {}
        since_id: str | None = state.get("since_id")
        next_token: str | None = state.get("next_token")
        run_newest: str | None = state.get("run_newest_id")
        pages = 0
        seen_tokens: set[str] = {next_token} if next_token else set()
        while self.max_pages is None or pages < self.max_pages:
            params: dict[str, Any] = {
                "query": self.query, "max_results": self.max_results, "tweet_fields": TWEET_FIELDS,
                "user_fields": USER_FIELDS, "expansions": EXPANSIONS,
            }
            if since_id:
                params["since_id"] = since_id
            if next_token:
                params["next_token"] = next_token
            response = self._search(params)
            body = response.text
            provenance = Provenance(
                source=self.connector, endpoint=f"{self.endpoint}?query={self.query}",
                retrieved_at=datetime.now(timezone.utc), connector_version=self.version,
            )
            try:
                meta = json.loads(body).get("meta", {})
            except (json.JSONDecodeError, AttributeError) as exc:
                self.stats.skip("malformed body")
                # Keep the body (it lands in quarantine), leave the cursor where it was, then report.
                unchanged = Cursor(self.source_name, self.query, {k: v for k, v in state.items() if v})
                yield parse_x_page(body, provenance, unchanged)
                raise MalformedPayload(f"X returned a body that is not a JSON object: {body[:200]!r}") from exc
            meta = meta if isinstance(meta, dict) else {}
            run_newest = run_newest or meta.get("newest_id")
            next_token = meta.get("next_token") if isinstance(meta.get("next_token"), str) else None
            if next_token and next_token in seen_tokens:
                # A token handed back twice would page in a circle: end the run as if it were the last page.
                self.stats.skip("repeated pagination token")
                next_token = None
            if next_token:
                seen_tokens.add(next_token)
            if next_token:
                state = {"since_id": since_id, "next_token": next_token, "run_newest_id": run_newest}
            else:
                state = {"since_id": run_newest or since_id}
            kept = {key: value for key, value in state.items() if value}
            yield parse_x_page(body, provenance, Cursor(self.source_name, self.query, kept))
            pages += 1
            if not next_token:
                return

    def _search(self, params: dict[str, Any]) -> Any:
        """Call the search endpoint, waiting out rate limits (capped) and retrying server errors."""
        import tweepy

        attempt = 0
        waits = 0
        while True:
            self.stats.requests += 1
            try:
                return self.client.search_recent_tweets(**params)
            except tweepy.Unauthorized as exc:
                raise Forbidden(f"X rejected the bearer token (401): check RESONANZ_X_BEARER_TOKEN ({exc})") from exc
            except tweepy.Forbidden as exc:
                raise Forbidden(f"X refused the search (403): {exc}") from exc
            except tweepy.NotFound as exc:
                raise NotFound(f"X search endpoint not found (404): {exc}") from exc
            except tweepy.TooManyRequests as exc:
                wait = rate_limit_wait_seconds(exc.response.headers, self.clock(), 60.0)
                if wait > self.max_wait or waits >= self.max_retries:
                    reset = exc.response.headers.get("x-rate-limit-reset")
                    raise RateLimited(f"X rate limit reached; resets at epoch {reset}", wait) from exc
                waits += 1
                self.stats.rate_limit_waits += 1
                self.stats.waited_seconds += wait
                self.sleep(wait)
            except (tweepy.TwitterServerError, requests.ConnectionError, requests.Timeout,
                    requests.exceptions.ChunkedEncodingError,  # a body cut off mid-transfer
                    requests.exceptions.ContentDecodingError) as exc:  # a corrupt compressed body
                if attempt >= self.max_retries:
                    raise TransientError(f"X search failed after {attempt + 1} attempts: {exc}") from exc
                backoff = min(60.0, 2.0**attempt)
                attempt += 1
                self.stats.retries += 1
                self.stats.waited_seconds += backoff
                self.sleep(backoff)
