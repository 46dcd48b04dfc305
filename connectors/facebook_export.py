"""Import posts and comments from Facebook's "Download your information" JSON export.

Live collection from Facebook pages or Instagram needs Meta's Graph API with an app that passed
App Review and a page access token (see docs/sources.md), so Resonanz reads the export a page
admin can download instead: `your_posts_*.json` (a list of posts) and `comments.json`
(`{"comments_v2": [...]}`). The export carries names, not ids, so accounts are `name:<Name>`
and posts are identified by a digest of author, time and text. Facebook writes UTF-8 text as
Latin-1 escapes ("\u00c3\u00bc" for "ü"); it is repaired here.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from connectors.base import MalformedPayload, NotFound
from connectors.records import Account, Cursor, Interaction, Page, Post, Provenance, Quarantined, RawPayload, content_id
from connectors.rss import site_of

PLATFORM = "facebook"
VERSION = "0.1.0"
ITEMS_PER_PAGE = 200
_COMMENTED_ON = re.compile(r"^(?P<actor>.+?) (?:commented on|replied to) (?P<target>.+?)'s? (?:own )?(?:post|comment|photo|video|link|status)")
_POSTED = re.compile(r"^(?P<actor>.+?) (?:updated (?:his|her|their) status|shared|posted|wrote|added)")
_LIST_KEYS = ("comments_v2", "comments", "status_updates_v2", "posts_v2", "posts")


def repair_text(value: str) -> str:
    """Undo Facebook's export escaping (UTF-8 bytes written as Latin-1 code points); leave correct text alone."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value


def _items(document: Any) -> list[Any]:
    if isinstance(document, list):
        return document
    if isinstance(document, dict):
        for key in _LIST_KEYS:
            if isinstance(document.get(key), list):
                return document[key]
    raise MalformedPayload("the file is neither a list of posts nor an export with comments_v2/posts")


def _account(name: str, raw_id: str) -> Account:
    return Account(PLATFORM, f"name:{name}", handle=None, display_name=name, raw_id=raw_id)


def parse_export_items(items: list[Any], owner: str | None, raw: RawPayload, cursor: Cursor) -> Page:
    """Turn export items (posts or comments) into a Page; items without text are quarantined."""
    page = Page(raw=raw, cursor=cursor)
    accounts: dict[str, Account] = {}
    seen: set[str] = set()
    for item in items:
        try:
            post, edges = _item(item, owner, raw.raw_id)
        except ValueError as exc:
            page.quarantined.append(Quarantined(PLATFORM, raw.raw_id, str(exc), json.dumps(item, ensure_ascii=False)))
            continue
        if post.post_id in seen:
            continue
        seen.add(post.post_id)
        page.posts.append(post)
        for name in {post.author_id or ""} | {edge.dst_account_id for edge in edges if edge.dst_account_id.startswith("name:")}:
            if name:
                accounts.setdefault(name, _account(name.removeprefix("name:"), raw.raw_id))
        page.interactions.extend(edges)
    page.accounts.extend(accounts.values())
    return page


def _item(item: Any, owner: str | None, raw_id: str) -> tuple[Post, list[Interaction]]:
    if not isinstance(item, dict):
        raise ValueError("item is not a JSON object")
    title = repair_text(item["title"]) if isinstance(item.get("title"), str) else ""
    entries = [d for d in item.get("data") or [] if isinstance(d, dict)]
    comment = next((d["comment"] for d in entries if isinstance(d.get("comment"), dict)), None)
    if comment is not None:
        text = repair_text(comment.get("comment") or "")
        author = repair_text(comment.get("author") or "") or _actor(title) or owner
        timestamp = comment.get("timestamp") or item.get("timestamp")
    else:
        text = repair_text(next((d["post"] for d in entries if isinstance(d.get("post"), str)), ""))
        author = owner or _actor(title)
        timestamp = item.get("timestamp")
    if not text.strip():
        raise ValueError("item has no text (photo, check-in or reaction only)")
    if not author:
        raise ValueError("author unknown: set the source option `owner` to the page's name")
    created = datetime.fromtimestamp(int(timestamp), timezone.utc) if isinstance(timestamp, (int, float)) else None
    author_id = f"name:{author}"
    post = Post(
        source=PLATFORM, post_id=f"fb-export:{content_id(author, str(timestamp), text)}", author_id=author_id,
        text=text, title=title or None, created_at=created, raw_id=raw_id,
    )
    edges: list[Interaction] = []
    target = _COMMENTED_ON.match(title)
    if comment is not None and target and target.group("target") != author:
        edges.append(Interaction(PLATFORM, "reply", author_id, f"name:{target.group('target')}", post.post_id, None, created))
    for url in _attachment_urls(item):
        domain = site_of(url)
        if domain and domain not in ("facebook.com", "m.facebook.com") and all(e.dst_account_id != f"site:{domain}" for e in edges):
            edges.append(Interaction(PLATFORM, "link", author_id, f"site:{domain}", post.post_id, None, created))
    return post, edges


def _actor(title: str) -> str | None:
    match = _COMMENTED_ON.match(title) or _POSTED.match(title)
    return match.group("actor") if match else None


def _attachment_urls(item: dict[str, Any]) -> Iterator[str]:
    for attachment in item.get("attachments") or []:
        for data in (attachment.get("data") or []) if isinstance(attachment, dict) else []:
            context = data.get("external_context") if isinstance(data, dict) else None
            if isinstance(context, dict) and isinstance(context.get("url"), str):
                yield context["url"]


class FacebookExportImporter:
    """Read one export JSON file in pages of items; the cursor is the file's digest and the items read."""

    name = PLATFORM
    version = VERSION
    connector = "import_facebook"

    def __init__(self, path: Path, source_name: str, stream: str, *, owner: str | None = None,
                 items_per_page: int = ITEMS_PER_PAGE) -> None:
        self.path = path
        self.source_name = source_name
        self.stream = stream
        self.owner = owner
        self.items_per_page = items_per_page

    def fetch(self, cursor: Cursor | None) -> Iterator[Page]:
        """Yield pages of items after the cursor's index; a changed file (new export) is read from the start."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError as exc:
            raise NotFound(f"Facebook export file not found: {self.path}") from exc
        digest = hashlib.sha256(data).hexdigest()
        try:
            items = _items(json.loads(data.decode("utf-8")))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise MalformedPayload(f"{self.path} is not a JSON export: {exc}") from exc
        state = cursor.state if cursor else {}
        start = int(state.get("index", 0)) if state.get("sha256") == digest else 0
        # Exports list newest first; read oldest first so an interrupted import resumes cleanly.
        ordered = list(reversed(items))
        for begin in range(start, len(ordered), self.items_per_page):
            chunk = ordered[begin:begin + self.items_per_page]
            body = json.dumps(chunk, ensure_ascii=False)  # the items exactly as exported (re-serialised)
            provenance = Provenance(self.connector, f"{self.stream}#items={begin}-{begin + len(chunk) - 1}",
                                    datetime.now(timezone.utc), self.version)
            end = begin + len(chunk)
            state = {"path": str(self.path), "sha256": digest, "index": end}
            yield parse_export_items(chunk, self.owner, RawPayload(provenance, body), Cursor(self.source_name, self.stream, state))
