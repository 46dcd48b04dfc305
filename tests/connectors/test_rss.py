"""RSS/Atom/JSON Feed: the bundled real feeds, quarantine of bad input, conditional GET against 127.0.0.1."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import pytest

from connectors.base import NotFound
from connectors.http import HttpClient
from connectors.records import Cursor, Page, Provenance
from connectors.rss import RssConnector, parse_feed
from resonanz.settings import SAMPLE_DIR

from http_harness import FIXTURES, FakeClock, LocalServer, Reply

FEEDS = SAMPLE_DIR / "feeds"


def parse(body: bytes) -> Page:
    provenance = Provenance("rss", "test-feed", datetime.now(timezone.utc), "test")
    return parse_feed(body, provenance, Cursor("test", "test-feed"))


def bundled() -> RssConnector:
    return RssConnector(str(FEEDS / "feeds.opml"), "feeds_sample", "bundled:feeds/feeds.opml", bundled_root=SAMPLE_DIR)


def test_bundled_opml_yields_one_page_per_real_feed() -> None:
    pages = list(bundled().fetch(None))
    endpoints = [page.raw.provenance.endpoint for page in pages]
    assert endpoints == [
        "bundled:feeds/google_alerts_atom.xml", "bundled:feeds/CRE.xml", "bundled:feeds/AmazonWebServicesBlog.xml",
        "bundled:feeds/TechCrunch.xml", "bundled:feeds/youtube_atom.xml",
    ]
    assert [len(page.posts) for page in pages] == [20, 30, 10, 20, 15]
    cre = pages[1]
    assert {post.lang_hint for post in cre.posts} == {"de"}
    assert cre.posts[0].title.startswith("CRE207")
    assert all(post.source == "rss" and post.text for page in pages for post in page.posts)
    # Three captures carry whitespace before the XML declaration: flagged, yet every entry still loads.
    bozo = [page.raw.provenance.endpoint for page in pages if page.quarantined]
    assert bozo == ["bundled:feeds/AmazonWebServicesBlog.xml", "bundled:feeds/TechCrunch.xml", "bundled:feeds/youtube_atom.xml"]
    assert all(q.reason.startswith("malformed feed: SAXParseException") for page in pages for q in page.quarantined)


def test_google_alerts_entries_are_attributed_to_the_publishing_site() -> None:
    page = parse((FEEDS / "google_alerts_atom.xml").read_bytes())
    first = page.posts[0]
    assert first.url.startswith("https://www.aglobalmarketresearch.com/report-offers-prediction")
    assert first.author_id == "site:aglobalmarketresearch.com"
    assert first.title.startswith("Report offers Prediction of Automotive Slack Market")  # <b> tags stripped
    assert first.post_id == "tag:google.com,2013:googlealerts/feed:8974135267215335962"


def test_links_to_other_sites_become_link_edges() -> None:
    page = parse((FEEDS / "TechCrunch.xml").read_bytes())
    edges = page.interactions
    assert edges and all(edge.kind == "link" and edge.dst_account_id.startswith("site:") for edge in edges)
    assert not any(edge.dst_account_id in ("site:techcrunch.com", "site:feeds.feedburner.com") for edge in edges)
    assert {edge.src_account_id for edge in edges} <= {account.account_id for account in page.accounts}
    per_post = Counter((edge.post_id, edge.dst_account_id) for edge in edges)
    assert max(per_post.values()) == 1
    assert "site:sec.gov" in {edge.dst_account_id for edge in edges}


def test_entry_without_text_is_quarantined_and_others_load() -> None:
    body = (FEEDS / "google_alerts_atom.xml").read_bytes()
    start = body.index(b"<entry>", body.index(b"<entry>") + 1)
    end = body.index(b"</entry>", start)
    entry = body[start:end]
    emptied = entry[: entry.index(b"<title")] + entry[entry.index(b"</title>") + 8 :]
    emptied = emptied[: emptied.index(b"<content")] + emptied[emptied.index(b"</content>") + 10 :]
    page = parse(body[:start] + emptied + body[end:])
    assert len(page.posts) == 19
    assert [q.reason for q in page.quarantined] == ["entry has no usable text (no title, summary or content)"]
    assert "googlealerts/feed:13685523368333461374" in page.quarantined[0].fragment


def test_malformed_feed_is_quarantined_while_recovered_entries_load() -> None:
    body = (FEEDS / "google_alerts_atom.xml").read_bytes()
    second_title_end = body.index(b"</title>", body.index(b"<entry>", body.index(b"<entry>") + 1))
    page = parse(body[:second_title_end] + b" & broken" + body[second_title_end:])
    assert len(page.quarantined) == 1
    assert page.quarantined[0].reason == "malformed feed: SAXParseException: <unknown>:1:1511: not well-formed (invalid token)"
    assert len(page.posts) == 20  # feedparser's lenient parser recovered every entry
    assert "<title type=\"html\">&lt;b&gt;Slack&lt;/b&gt; Stock" in page.raw.body and " & broken" in page.raw.body


def test_not_a_feed_is_quarantined() -> None:
    page = parse(b"<html><body>Service temporarily unavailable</body></html>")
    assert page.posts == [] and len(page.quarantined) == 1


def test_json_feed_is_parsed() -> None:
    page = parse((FIXTURES / "rss" / "json_feed.json").read_bytes())
    assert len(page.posts) == 20 and page.quarantined == []
    assert page.accounts[0].account_id == "author:inessential.com/Brent Simmons"
    assert page.posts[0].created_at == datetime.fromisoformat("2017-06-02T22:05:47-07:00")
    assert page.posts[0].lang_hint == "en"


def test_opml_resume_skips_feeds_already_stored() -> None:
    pages = list(bundled().fetch(None))
    resumed = list(bundled().fetch(pages[1].cursor))
    assert [p.raw.provenance.endpoint for p in resumed] == [p.raw.provenance.endpoint for p in pages[2:]]
    assert list(bundled().fetch(pages[-1].cursor)) == []  # nothing changed since the last stored page


def test_live_feed_uses_etag_and_last_modified(local_server: LocalServer, clock: FakeClock) -> None:
    feed = (FEEDS / "CRE.xml").read_bytes()
    validators = {"ETag": '"cre-1"', "Last-Modified": "Fri, 13 Feb 2015 23:23:53 GMT", "Content-Type": "application/rss+xml"}
    url = local_server.route("/cre.xml", Reply(200, feed, validators), Reply(304))
    with HttpClient(sleep=clock.sleep, clock=clock.time) as http:
        connector = RssConnector(url, "cre", url, http=http)
        first = list(connector.fetch(None))
        assert len(first) == 1 and len(first[0].posts) == 30
        state = first[0].cursor.state["feeds"][url]
        assert (state["etag"], state["last_modified"]) == ('"cre-1"', "Fri, 13 Feb 2015 23:23:53 GMT")
        assert list(connector.fetch(first[0].cursor)) == []
        assert http.stats.not_modified == 1
    second = local_server.requests[1].headers
    assert second["if-none-match"] == '"cre-1"' and second["if-modified-since"] == "Fri, 13 Feb 2015 23:23:53 GMT"
    assert "if-none-match" not in local_server.requests[0].headers


def test_missing_feed_file_raises_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="feed file not found"):
        list(RssConnector(str(tmp_path / "gone.xml"), "x", "x").fetch(None))
