"""Reddit: new submissions or comments of a subreddit via the OAuth API, through the shared HTTP client.

praw is not used: it hands back parsed objects, and Resonanz keeps every response body verbatim
before parsing. The listing JSON is the same either way; app-only OAuth is one POST.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlparse

from connectors.base import MalformedPayload, MissingCredential
from connectors.http import HttpClient, HttpStats
from connectors.records import Account, Cursor, Interaction, Page, Post, Provenance, Quarantined, RawPayload

PLATFORM = "reddit"
VERSION = "0.1.0"
TOKEN_URL = "https://www.reddit.com/api/v1/access_token"
API_BASE = "https://oauth.reddit.com"
# u/name or /u/name in text; Reddit usernames are 3-20 letters, digits, "_" or "-".
_USER_MENTION = re.compile(r"(?<![\w/])/?u/([A-Za-z0-9_-]{3,20})\b")
_GONE = {"[deleted]", "[removed]"}
_OWN_DOMAINS = ("reddit.com", "redd.it", "redditmedia.com")


def parse_reddit_listing(body: str, provenance: Provenance, cursor: Cursor) -> Page:
    """Turn one Reddit Listing body (t3 submissions and/or t1 comments) into a Page."""
    raw = RawPayload(provenance=provenance, body=body)
    page = Page(raw=raw, cursor=cursor)
    try:
        listing = json.loads(body)
        children = listing["data"]["children"]
        if not isinstance(children, list):
            raise TypeError("data.children is not a list")
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        page.quarantined.append(Quarantined(PLATFORM, raw.raw_id, f"not a Reddit listing: {exc}", body[:20_000]))
        return page
    authors_by_name = {
        c["data"]["name"]: c["data"].get("author")
        for c in children if isinstance(c, dict) and isinstance(c.get("data"), dict) and c["data"].get("name")
    }
    accounts: dict[str, Account] = {}
    for child in children:
        reason = _problem(child)
        if reason:
            page.quarantined.append(Quarantined(PLATFORM, raw.raw_id, reason, json.dumps(child, ensure_ascii=False)))
            continue
        data = child["data"]
        author = data.get("author") if data.get("author") not in _GONE else None
        post = _post(child["kind"], data, raw.raw_id)
        page.posts.append(post)
        if author is None:
            continue
        profile = f"https://www.reddit.com/user/{author}"
        accounts.setdefault(author, Account(PLATFORM, author, handle=author, url=profile, raw_id=raw.raw_id))
        page.interactions.extend(_edges(child["kind"], data, post, author, authors_by_name))
    page.accounts.extend(accounts.values())
    return page


def _problem(child: Any) -> str | None:
    if not isinstance(child, dict) or not isinstance(child.get("data"), dict):
        return "listing child is not an object with data"
    data = child["data"]
    if child.get("kind") not in ("t1", "t3"):
        return f"unsupported kind {child.get('kind')!r}"
    if not data.get("name"):
        return "missing name (fullname id)"
    text = data.get("body") if child["kind"] == "t1" else (data.get("selftext") or data.get("title"))
    if not isinstance(text, str) or not text.strip() or text.strip() in _GONE:
        return "no usable text (empty, deleted or removed)"
    if not isinstance(data.get("created_utc"), (int, float)):
        return f"created_utc is not a number: {data.get('created_utc')!r}"
    try:
        datetime.fromtimestamp(data["created_utc"], tz=timezone.utc)
    except (ValueError, OverflowError, OSError):
        return f"created_utc is not a possible time: {data['created_utc']!r}"
    return None


def _post(kind: str, data: dict[str, Any], raw_id: str) -> Post:
    created = datetime.fromtimestamp(data["created_utc"], tz=timezone.utc)
    permalink = data.get("permalink")
    url = f"https://www.reddit.com{permalink}" if isinstance(permalink, str) and permalink.startswith("/") else None
    author = data.get("author") if data.get("author") not in _GONE else None
    score = data.get("score") if isinstance(data.get("score"), int) else None
    if kind == "t3":
        title = data.get("title") or None
        return Post(PLATFORM, data["name"], author, data.get("selftext") or title or "", created, url, title,
                    parent_post_id=None, conversation_id=data["name"], like_count=score,
                    reply_count=data.get("num_comments") if isinstance(data.get("num_comments"), int) else None,
                    raw_id=raw_id)
    return Post(PLATFORM, data["name"], author, data["body"], created, url, None,
                parent_post_id=data.get("parent_id"), conversation_id=data.get("link_id"), like_count=score,
                raw_id=raw_id)


def _edges(
    kind: str, data: dict[str, Any], post: Post, author: str, authors_by_name: dict[str, Any]
) -> Iterator[Interaction]:
    seen: set[tuple[str, str]] = set()

    def edge(edge_kind: str, target: str | None, target_post: str | None = None) -> Interaction | None:
        if not target or target in _GONE or target == author or (edge_kind, target) in seen:
            return None
        seen.add((edge_kind, target))
        return Interaction(PLATFORM, edge_kind, author, target, post.post_id, target_post, post.created_at)

    if kind == "t1":
        parent = data.get("parent_id") or ""
        parent_author = data.get("link_author") if parent.startswith("t3_") else authors_by_name.get(parent)
        if made := edge("reply", parent_author, parent or None):
            yield made
    text = data.get("body") if kind == "t1" else f"{data.get('title', '')}\n{data.get('selftext', '')}"
    for name in _USER_MENTION.findall(text or ""):
        if made := edge("mention", name):
            yield made
    if kind == "t3" and not data.get("is_self") and isinstance(data.get("url"), str):
        host = (urlparse(data["url"]).hostname or "").lower().removeprefix("www.")
        if host and not host.endswith(_OWN_DOMAINS) and (made := edge("link", f"site:{host}")):
            yield made


class RedditConnector:
    """Newest submissions (stream "<subreddit>") or comments ("<subreddit>/comments"), newest first, until known."""

    name = PLATFORM
    version = VERSION
    connector = "reddit"

    def __init__(self, stream: str, source_name: str, client_id: str | None, client_secret: str | None,
                 http: HttpClient | None = None, max_pages: int = 10,
                 token_url: str = TOKEN_URL, api_base: str = API_BASE) -> None:
        if not client_id:
            raise MissingCredential("Reddit client id", "RESONANZ_REDDIT_CLIENT_ID")
        if not client_secret:
            raise MissingCredential("Reddit client secret", "RESONANZ_REDDIT_CLIENT_SECRET")
        subreddit, _, listing = stream.removeprefix("r/").partition("/")
        self.path = f"/r/{subreddit}/{'comments' if listing == 'comments' else 'new'}"
        self.stream = stream
        self.source_name = source_name
        self._credentials = (client_id, client_secret)
        self.http = http or HttpClient()
        self.max_pages = max_pages
        self.token_url = token_url
        self.api_base = api_base.rstrip("/")

    @property
    def stats(self) -> HttpStats:
        """Request, retry and rate-limit wait counts of this connector's HTTP client."""
        return self.http.stats

    def fetch(self, cursor: Cursor | None) -> Iterator[Page]:
        """Yield listing pages newer than the cursor's newest_utc, continuing an interrupted run's `after`."""
        state = dict(cursor.state) if cursor else {}
        since = float(state.get("newest_utc", 0.0))
        after = state.get("after")
        run_newest = state.get("run_newest_utc")
        headers = {"Authorization": f"bearer {self._token()}"}
        seen_afters: set[str] = {after} if after else set()
        for _ in range(self.max_pages):
            params = {"limit": 100, "raw_json": 1, **({"after": after} if after else {})}
            response = self.http.request("GET", self.api_base + self.path, params=params, headers=headers)
            provenance = Provenance(self.connector, self.api_base + self.path, datetime.now(timezone.utc), self.version)
            try:
                data = json.loads(response.text)["data"]
                created = [
                    c["data"]["created_utc"] for c in data["children"]
                    if isinstance(c, dict) and isinstance(c.get("data"), dict)
                    and isinstance(c["data"].get("created_utc"), (int, float))
                ]
                after = data.get("after") if isinstance(data.get("after"), str) else None
            except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
                self.stats.skip("malformed body")
                yield parse_reddit_listing(response.text, provenance, Cursor(self.source_name, self.stream, state))
                raise MalformedPayload(f"Reddit returned a body that is not a listing: {exc}") from exc
            if after and after in seen_afters:
                # The same `after` twice would fetch the same page again and again until max_pages.
                self.stats.skip("repeated pagination token")
                after = None
            if after:
                seen_afters.add(after)
            run_newest = max([run_newest or 0.0, *created]) or None
            reached_known = bool(created) and min(created) <= since
            if after and not reached_known:
                state = {"newest_utc": since, "after": after, "run_newest_utc": run_newest}
            else:
                state = {"newest_utc": max(since, run_newest or 0.0)}
            yield parse_reddit_listing(response.text, provenance, Cursor(self.source_name, self.stream, state))
            if "after" not in state:
                return

    def _token(self) -> str:
        response = self.http.request(
            "POST", self.token_url, data={"grant_type": "client_credentials"}, auth=self._credentials
        )
        try:
            return json.loads(response.text)["access_token"]
        except (json.JSONDecodeError, KeyError) as exc:
            raise MalformedPayload(f"Reddit token endpoint returned no access_token: {exc}") from exc
