"""MediaWiki recent changes (any wiki's Action API) through the shared HTTP client.

A stream is the wiki's api.php URL, optionally with `|ns=1,3` to restrict namespaces (odd numbers
are talk pages, where people discuss; `|ns=1` is the usual choice for listening). Each change is a
post whose text is its edit summary (the page title when the summary is empty), authored by the
editor; an edit answers the author of the revision it changed when that revision is in the same
page of results (reply edge). Changes are read oldest first from the cursor's timestamp
(`rcdir=newer`) and paged with `rccontinue`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlparse

from connectors.base import MalformedPayload, RateLimited
from connectors.http import HttpClient
from connectors.records import Account, Cursor, Interaction, Page, Post, Provenance, Quarantined, RawPayload
from connectors.rss import html_text_and_links

PLATFORM = "mediawiki"
VERSION = "0.1.0"
RC_PROPS = "title|ids|sizes|flags|user|userid|timestamp|comment|parsedcomment"
MAX_LIMIT = 500  # rclimit for anonymous clients


def parse_recent_changes(body: str, host: str, provenance: Provenance, cursor: Cursor) -> Page:
    """Turn one list=recentchanges response body of wiki `host` into a Page."""
    raw = RawPayload(provenance=provenance, body=body, content_type="application/json")
    page = Page(raw=raw, cursor=cursor)
    try:
        payload = json.loads(body)
    except json.JSONDecodeError as exc:
        page.quarantined.append(Quarantined(PLATFORM, raw.raw_id, f"malformed JSON: {exc}", body))
        return page
    changes = (payload.get("query") or {}).get("recentchanges") if isinstance(payload, dict) else None
    if not isinstance(changes, list):
        reason = f"API error: {json.dumps(payload.get('error'))}" if isinstance(payload, dict) and payload.get("error") else "no query.recentchanges"
        page.quarantined.append(Quarantined(PLATFORM, raw.raw_id, reason, body))
        return page
    editor_of_revision: dict[int, str] = {}
    accounts: dict[str, Account] = {}
    for change in changes:
        try:
            post, account = _change(change, host, raw.raw_id)
        except ValueError as exc:
            page.quarantined.append(Quarantined(PLATFORM, raw.raw_id, f"change: {exc}", json.dumps(change, ensure_ascii=False)))
            continue
        page.posts.append(post)
        accounts.setdefault(account.account_id, account)
        if isinstance(change.get("revid"), int) and change["revid"]:
            editor_of_revision[change["revid"]] = account.account_id
        previous = editor_of_revision.get(change.get("old_revid") or 0)
        if previous and previous != account.account_id:
            # Editing right after someone else on the same page answers them (talk pages especially).
            page.interactions.append(Interaction(PLATFORM, "reply", account.account_id, previous, post.post_id,
                                                 f"{host}/rev/{change['old_revid']}", post.created_at))
    page.accounts.extend(accounts.values())
    return page


def _change(change: Any, host: str, raw_id: str) -> tuple[Post, Account]:
    if not isinstance(change, dict):
        raise ValueError("not a JSON object")
    title, user = change.get("title"), change.get("user")
    if not isinstance(title, str) or not title:
        raise ValueError("no title")
    if not isinstance(user, str) or not user:
        raise ValueError("no user (hidden by revision deletion)")
    revid, rcid = change.get("revid"), change.get("rcid")
    if not isinstance(rcid, int):
        raise ValueError("no rcid")
    summary = change.get("comment") if isinstance(change.get("comment"), str) else ""
    if not summary and isinstance(change.get("parsedcomment"), str):
        summary = html_text_and_links(change["parsedcomment"])[0]
    timestamp = change.get("timestamp")
    created = datetime.fromisoformat(timestamp.replace("Z", "+00:00")) if isinstance(timestamp, str) else None
    # Anonymous editors are IP addresses; a user id of 0 marks them.
    account_id = f"{host}/user/{user}"
    account = Account(PLATFORM, account_id, handle=user, url=f"https://{host}/wiki/User:{user.replace(' ', '_')}", raw_id=raw_id)
    post = Post(
        source=PLATFORM,
        post_id=f"{host}/rev/{revid}" if isinstance(revid, int) and revid else f"{host}/rc/{rcid}",
        author_id=account_id,
        text=summary or title,
        title=title,
        created_at=created,
        url=f"https://{host}/w/index.php?diff={revid}" if revid else f"https://{host}/wiki/{title.replace(' ', '_')}",
        parent_post_id=f"{host}/rev/{change['old_revid']}" if change.get("old_revid") else None,
        conversation_id=f"{host}/page/{change.get('pageid')}" if change.get("pageid") else None,
        raw_id=raw_id,
    )
    return post, account


class MediaWikiRecentChangesConnector:
    """Read a wiki's recent changes oldest first from the cursor's timestamp, following rccontinue."""

    name = PLATFORM
    version = VERSION
    connector = "mediawiki"

    def __init__(self, stream: str, source_name: str, *, limit: int = MAX_LIMIT, max_pages: int | None = None,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.time) -> None:
        api, _, options = stream.partition("|")
        if urlparse(api).scheme not in ("http", "https") or not api.rstrip("/").endswith("api.php"):
            raise ValueError(f"MediaWiki stream {stream!r} must start with the wiki's api.php URL")
        self.api = api.strip()
        self.namespaces = options.strip().removeprefix("ns=") if options.strip().startswith("ns=") else None
        self.host = urlparse(self.api).netloc
        self.stream = stream
        self.source_name = source_name
        self.limit = max(1, min(limit, MAX_LIMIT))
        self.max_pages = max_pages
        self.http = HttpClient(sleep=sleep, clock=clock)
        self.stats = self.http.stats

    def fetch(self, cursor: Cursor | None) -> Iterator[Page]:
        """Yield pages of changes newer than the cursor's timestamp (inclusive; re-seen changes are upserts)."""
        state = dict(cursor.state) if cursor else {}
        pages = 0
        while self.max_pages is None or pages < self.max_pages:
            params: dict[str, Any] = {
                "action": "query", "list": "recentchanges", "rcprop": RC_PROPS, "rclimit": self.limit,
                "rcdir": "newer", "format": "json", "formatversion": 2, "maxlag": 5,
            }
            if self.namespaces:
                params["rcnamespace"] = self.namespaces.replace(",", "|")
            if state.get("rcstart"):
                params["rcstart"] = state["rcstart"]
            if state.get("rccontinue"):
                params["rccontinue"] = state["rccontinue"]
            response = self.http.request("GET", self.api, params=params)
            provenance = Provenance(self.connector, f"{self.api}?list=recentchanges", datetime.now(timezone.utc), self.version)
            try:
                payload = json.loads(response.text)
            except json.JSONDecodeError:
                payload = None
            if not isinstance(payload, dict):
                yield parse_recent_changes(response.text, self.host, provenance, Cursor(self.source_name, self.stream, state))
                raise MalformedPayload(f"{self.api} returned a body that is not a JSON object")
            if isinstance(payload.get("error"), dict):
                # e.g. maxlag (replication lag) or a bad parameter: keep the answer, do not move the cursor.
                yield parse_recent_changes(response.text, self.host, provenance, Cursor(self.source_name, self.stream, state))
                error = payload["error"]
                if error.get("code") == "maxlag":
                    wait = float(response.headers.get("Retry-After", "5"))
                    raise RateLimited(f"{self.api} is lagging ({error.get('info')}); retry in {wait:.0f}s", wait)
                raise MalformedPayload(f"{self.api} answered with error {error.get('code')}: {error.get('info')}")
            changes = (payload.get("query") or {}).get("recentchanges") or []
            newest = max((c["timestamp"] for c in changes if isinstance(c, dict) and isinstance(c.get("timestamp"), str)),
                         default=state.get("run_newest"))
            token = (payload.get("continue") or {}).get("rccontinue")
            if token:
                state = {"rcstart": state.get("rcstart"), "rccontinue": token, "run_newest": newest}
            else:
                state = {"rcstart": newest or state.get("rcstart")}
            state = {k: v for k, v in state.items() if v}
            yield parse_recent_changes(response.text, self.host, provenance, Cursor(self.source_name, self.stream, state))
            pages += 1
            if not token:
                return
