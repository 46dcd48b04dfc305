"""RSS, Atom and JSON Feed: parse feed bytes with feedparser into posts, accounts and link edges.

A stream is a feed URL, a local feed file, or an OPML file listing feeds. feedparser only ever
parses bytes here; fetching goes through the shared HTTP client (timeouts, retries, conditional GET).
"""

from __future__ import annotations

import hashlib
import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlparse

import feedparser
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring as defused_fromstring

from connectors.base import MalformedPayload, NotFound
from connectors.http import HttpClient, HttpStats
from connectors.records import Account, Cursor, Interaction, Page, Post, Provenance, Quarantined, RawPayload, content_id

PLATFORM = "rss"
VERSION = "0.1.0"
# Feed-proxy and ad domains inside content are plumbing, not a post pointing readers at another site.
_PLUMBING_DOMAINS = (
    "feedburner.com", "feedproxy.google.com", "feeds.wordpress.com", "feedsportal.com", "doubleclick.net", "pheedo.com",
)
_FRAGMENT_LIMIT = 20_000


@dataclass(slots=True)
class FeedEntry:
    """One entry in the shape shared by XML feeds and JSON Feed."""

    guid: str | None
    link: str | None
    title: str
    html: str
    author: str | None
    published: datetime | None
    original: Any  # the parsed entry, quoted in quarantine


class _TextAndLinks(HTMLParser):
    """Collect visible text and a[href] targets from an HTML fragment."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            href = dict(attrs).get("href")
            if href:
                self.links.append(href)
        elif tag in ("p", "br", "div", "li", "h1", "h2", "h3", "tr"):
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def html_text_and_links(html: str, base_url: str | None = None) -> tuple[str, list[str]]:
    """Return the plain text of an HTML fragment and the absolute http(s) URLs it links to."""
    parser = _TextAndLinks()
    parser.feed(html)
    parser.close()
    lines = (" ".join(line.split()) for line in "".join(parser.parts).splitlines())
    text = "\n".join(line for line in lines if line)
    links = [_join(base_url or "", href) for href in parser.links]
    return text, [link for link in links if _is_url(link)]


def site_of(url: str | None) -> str | None:
    """Return the host of a URL without a leading www., lower-cased."""
    if not url:
        return None
    try:
        host = (urlparse(url).hostname or "").lower()
    except ValueError:  # e.g. "http://[broken" (an invalid IPv6 literal)
        return None
    return host.removeprefix("www.") or None


def unwrap_redirect(url: str | None) -> str | None:
    """Return the target of a Google redirect link (as in Google Alerts feeds), else the URL itself."""
    if not url:
        return url
    try:
        parsed = urlparse(url)
    except ValueError:
        return url
    if parsed.hostname and parsed.hostname.endswith("google.com") and parsed.path == "/url":
        target = parse_qs(parsed.query).get("url") or parse_qs(parsed.query).get("q")
        if target:
            return target[0]
    return url


def parse_feed(body: bytes, provenance: Provenance, cursor: Cursor, content_type: str = "application/xml") -> Page:
    """Turn one feed document into a Page; a malformed feed is quarantined but recovered entries still load."""
    stripped = body.lstrip()
    if stripped.startswith(b"{"):
        return _parse_json_feed(body, provenance, cursor)
    refusal = _xml_refusal(stripped)
    try:
        parsed = feedparser.parse(b"" if refusal else body, sanitize_html=True, resolve_relative_uris=True)
    except Exception as exc:  # noqa: BLE001 (feedparser's own bugs, e.g. <psc:chapter> without start: TypeError)
        refusal = f"feed parser failed: {type(exc).__name__}: {exc}"
        parsed = feedparser.parse(b"")
    text = body.decode(parsed.get("encoding") or "utf-8", errors="replace")
    raw = RawPayload(provenance=provenance, body=text, content_type=content_type)
    page = Page(raw=raw, cursor=cursor)
    if refusal:
        page.quarantined.append(Quarantined(PLATFORM, raw.raw_id, refusal, text[:_FRAGMENT_LIMIT]))
        return page
    if parsed.get("bozo"):
        exc = parsed.get("bozo_exception")
        page.quarantined.append(Quarantined(
            PLATFORM, raw.raw_id, f"malformed feed: {type(exc).__name__}: {exc}", text[:_FRAGMENT_LIMIT]
        ))
    # An empty body parses to a result without "version" (attribute access would raise): use .get.
    if not parsed.get("entries") and not parsed.get("version"):
        if not parsed.get("bozo"):
            reason = "not a feed: no RSS/Atom root"
            page.quarantined.append(Quarantined(PLATFORM, raw.raw_id, reason, text[:_FRAGMENT_LIMIT]))
        return page
    feed = parsed.feed
    feed_link = _feed_home(feed) or provenance.endpoint
    lang = (feed.get("language") or "").split("-")[0].lower() or None
    entries = [
        FeedEntry(
            guid=entry.get("id") or None,
            link=entry.get("feedburner_origlink") or unwrap_redirect(entry.get("link")),
            title=entry.get("title", ""),
            html=_entry_html(entry),
            author=(entry.get("author") or "").strip() or None,
            published=_struct_time(entry.get("published_parsed") or entry.get("updated_parsed")),
            original=entry,
        )
        for entry in parsed.entries
    ]
    _add_entries(page, entries, feed_link, feed.get("title"), lang)
    return page


def _xml_refusal(body: bytes) -> str | None:
    """Return why a feed is refused if it declares entities or external references (billion laughs, XXE)."""
    try:
        defused_fromstring(body, forbid_dtd=False, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        return f"refused feed: {type(exc).__name__}: {exc}"
    except (ET.ParseError, ValueError, LookupError):
        return None  # not well-formed or an unknown encoding: feedparser's lenient parser and the bozo flag handle it
    return None


def _feed_home(feed: Any) -> str | None:
    """Return the feed's web site: its alternate link, else its link, else any http link it lists."""
    links = [link for link in feed.get("links", []) if _is_url(str(link.get("href", "")))]
    alternate = next((link["href"] for link in links if link.get("rel") == "alternate"), None)
    own = feed.get("link") if _is_url(str(feed.get("link", ""))) else None
    return alternate or own or (links[0]["href"] if links else None)


def _entry_html(entry: Any) -> str:
    # Full content beats the summary; podcasts often carry show notes only in content:encoded.
    # feedparser may hold a key with the value None (e.g. an element cut off mid-document): "or" covers both.
    contents = entry.get("content") or []
    if contents:
        return max((c.get("value") or "" for c in contents), key=len)
    return entry.get("summary") or ""


def _struct_time(value: Any) -> datetime | None:
    if not value:
        return None
    return datetime(*value[:6], tzinfo=timezone.utc)


def _parse_json_feed(body: bytes, provenance: Provenance, cursor: Cursor) -> Page:
    # feedparser 6.0 reads XML feeds only, so JSON Feed (jsonfeed.org) is mapped here by hand.
    text = body.decode("utf-8", errors="replace")
    raw = RawPayload(provenance=provenance, body=text, content_type="application/feed+json")
    page = Page(raw=raw, cursor=cursor)
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        reason = f"malformed JSON feed: {exc}"
        page.quarantined.append(Quarantined(PLATFORM, raw.raw_id, reason, text[:_FRAGMENT_LIMIT]))
        return page
    if not isinstance(document, dict) or "jsonfeed.org" not in str(document.get("version", "")):
        page.quarantined.append(Quarantined(PLATFORM, raw.raw_id, "JSON is not a JSON Feed", text[:_FRAGMENT_LIMIT]))
        return page
    feed_author = _text(document["author"].get("name")) or None if isinstance(document.get("author"), dict) else None
    entries = []
    for item in document.get("items") or []:
        if not isinstance(item, dict):
            reason = "JSON Feed item is not an object"
            page.quarantined.append(Quarantined(PLATFORM, raw.raw_id, reason, json.dumps(item)))
            continue
        authors = item.get("authors") or ([item["author"]] if isinstance(item.get("author"), dict) else [])
        names = (_text(a.get("name")) for a in authors if isinstance(a, dict)) if isinstance(authors, list) else ()
        author = next((name for name in names if name), None) or feed_author
        try:
            published = datetime.fromisoformat(item["date_published"]) if _text(item.get("date_published")) else None
        except (TypeError, ValueError):
            published = None
        if published and published.tzinfo is None:
            published = published.replace(tzinfo=timezone.utc)  # JSON Feed requires an offset; assume UTC if absent
        entries.append(FeedEntry(
            guid=str(item["id"]) if item.get("id") is not None else None, link=_text(item.get("url")) or None,
            title=_text(item.get("title")),
            html=_text(item.get("content_html")) or _text(item.get("content_text")) or _text(item.get("summary")),
            author=_text(author) or None, published=published, original=item,
        ))
    lang = str(document.get("language") or "").split("-")[0].lower() or None
    home = _text(document.get("home_page_url")) or provenance.endpoint
    _add_entries(page, entries, home, _text(document.get("title")) or None, lang)
    return page


def _text(value: Any) -> str:
    """Return a JSON Feed string field, or "" when it is missing or not a string."""
    return value if isinstance(value, str) else ""


def _add_entries(
    page: Page, entries: list[FeedEntry], feed_link: str | None, feed_title: str | None, lang: str | None
) -> None:
    feed_site = site_of(feed_link) or "unknown"
    accounts: dict[str, Account] = {}
    seen_posts: set[str] = set()
    for entry in entries:
        title, _ = html_text_and_links(entry.title) if entry.title else ("", [])
        text, links = html_text_and_links(entry.html, entry.link or feed_link)
        if not text and not title:
            reason = "entry has no usable text (no title, summary or content)"
            page.quarantined.append(Quarantined(PLATFORM, page.raw.raw_id, reason, _fragment(entry.original)))
            continue
        # Aggregators (Google Alerts) list other publishers' articles: then the article's site is the voice.
        entry_site = site_of(entry.link) or feed_site
        if entry.author:
            account = Account(PLATFORM, f"author:{feed_site}/{entry.author}", handle=entry.author,
                              display_name=entry.author, url=feed_link, raw_id=page.raw.raw_id)
        else:
            own_site = entry_site == feed_site
            account = Account(PLATFORM, f"site:{entry_site}", handle=entry_site,
                              display_name=feed_title if own_site else entry_site,
                              url=feed_link if own_site else f"https://{entry_site}/", raw_id=page.raw.raw_id)
        accounts.setdefault(account.account_id, account)
        post_id = entry.guid or entry.link or content_id(feed_site, title, text)
        if post_id in seen_posts:
            continue
        seen_posts.add(post_id)
        page.posts.append(Post(
            source=PLATFORM, post_id=post_id, author_id=account.account_id, text=text or title,
            created_at=entry.published, url=entry.link, title=title or None, lang_hint=lang, raw_id=page.raw.raw_id,
        ))
        own_sites = {feed_site, entry_site}
        linked: set[str] = set()
        for link in links:
            domain = site_of(link)
            if not domain or domain in own_sites or domain in linked or domain.endswith(_PLUMBING_DOMAINS):
                continue
            linked.add(domain)
            page.interactions.append(Interaction(
                PLATFORM, "link", account.account_id, f"site:{domain}", post_id, None, entry.published
            ))
    page.accounts.extend(accounts.values())


def _fragment(original: Any) -> str:
    try:
        return json.dumps(original, ensure_ascii=False, default=str)[:_FRAGMENT_LIMIT]
    except (TypeError, ValueError):
        return repr(original)[:_FRAGMENT_LIMIT]


def read_opml(body: bytes, base: str) -> list[str]:
    """Return the feed locations (xmlUrl) an OPML document lists, resolved against `base`."""
    try:
        root = defused_fromstring(body)
    except DefusedXmlException as exc:
        raise MalformedPayload(f"OPML file refused: {type(exc).__name__}: {exc}") from exc
    except (ET.ParseError, LookupError, ValueError) as exc:  # unknown (LookupError) or multi-byte (ValueError) encodings
        raise MalformedPayload(f"OPML file is not valid XML: {exc}") from exc
    feeds = []
    for outline in root.iter("outline"):
        location = outline.get("xmlUrl")
        if not location:
            continue
        if _is_url(base):
            # A remote OPML list may only name remote feeds: a local path in it would read this machine's files.
            location = _join(base, location)
            if _is_url(location):
                feeds.append(location)
        else:
            feeds.append(location if _is_url(location) else str(Path(base).parent / location))
    return feeds


class RssConnector:
    """Read one feed or every feed of an OPML list; one Page per feed that changed since the cursor."""

    name = PLATFORM
    version = VERSION
    connector = "rss"

    def __init__(self, location: str, source_name: str, stream: str, http: HttpClient | None = None,
                 bundled_root: Path | None = None) -> None:
        self.location = location  # URL or local path (bundled: already resolved)
        self.source_name = source_name
        self.stream = stream
        self.http = http
        self.bundled_root = bundled_root

    def fetch(self, cursor: Cursor | None) -> Iterator[Page]:
        """Yield a Page per feed whose content changed since the cursor (ETag/Last-Modified or digest)."""
        seen: dict[str, dict[str, str]] = dict((cursor.state.get("feeds") if cursor else None) or {})
        for feed in self._feeds():
            endpoint = self._endpoint(feed)
            previous = seen.get(endpoint, {})
            fetched = self._read(feed, previous)
            if fetched is None:
                continue
            body, content_type, validators = fetched
            digest = hashlib.sha256(body).hexdigest()
            if previous.get("sha256") == digest:
                continue
            seen[endpoint] = {"sha256": digest, **validators}
            provenance = Provenance(self.connector, endpoint, datetime.now(timezone.utc), self.version)
            state = {"feeds": {key: dict(value) for key, value in seen.items()}}
            yield parse_feed(body, provenance, Cursor(self.source_name, self.stream, state), content_type)

    @property
    def stats(self) -> HttpStats:
        """Request, retry, wait and 304 counts of this connector's HTTP client (zero for local files)."""
        return self.http.stats if self.http else HttpStats()

    def _feeds(self) -> list[str]:
        if self.location.lower().endswith(".opml"):
            if _is_url(self.location):
                body = self._client().request("GET", self.location).content
            else:
                body = self._read_local(self.location)
            return read_opml(body, self.location)
        return [self.location]

    def _endpoint(self, feed: str) -> str:
        # Bundled files are named relative to the sample folder so raw ids do not depend on the install path.
        if self.bundled_root and not _is_url(feed):
            try:
                return "bundled:" + Path(feed).resolve().relative_to(self.bundled_root.resolve()).as_posix()
            except ValueError:
                pass
        return feed

    def _read(self, feed: str, previous: dict[str, str]) -> tuple[bytes, str, dict[str, str]] | None:
        if not _is_url(feed):
            return self._read_local(feed), "application/xml", {}
        response = self._client().conditional_get(
            feed, etag=previous.get("etag"), last_modified=previous.get("last_modified")
        )
        if response is None:
            return None
        validators = {k: v for k, v in (("etag", response.headers.get("ETag")),
                                        ("last_modified", response.headers.get("Last-Modified"))) if v}
        return response.content, response.headers.get("Content-Type", "application/xml"), validators

    @staticmethod
    def _read_local(path: str) -> bytes:
        try:
            return Path(path).read_bytes()
        except FileNotFoundError as exc:
            raise NotFound(f"feed file not found: {path}") from exc

    def _client(self) -> HttpClient:
        if self.http is None:
            self.http = HttpClient()
        return self.http


def _is_url(location: str) -> bool:
    try:
        return urlparse(location).scheme in ("http", "https")
    except ValueError:  # urllib raises on an invalid IPv6 literal; such a URL is not fetchable anyway
        return False


def _join(base: str, href: str) -> str:
    """urljoin that returns "" (not a URL) instead of raising on a malformed href."""
    try:
        return urljoin(base, href)
    except ValueError:
        return ""
