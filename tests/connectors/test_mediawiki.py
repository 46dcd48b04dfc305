"""MediaWiki recent changes: the shared HTTP client against a local api.php replay, paged by rccontinue."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from connectors.base import RateLimited
from connectors.mediawiki import MediaWikiRecentChangesConnector

from http_harness import FIXTURES, Reply
from router_server import RouterServer, serve

HERE = FIXTURES / "mediawiki"


def recorded(name: str) -> bytes:
    return (HERE / f"{name}.json").read_bytes()


class ApiPhp:
    def __init__(self) -> None:
        self.lagging = False

    def __call__(self, path: str, query: dict[str, list[str]], _headers: dict[str, str]) -> Reply:
        json_type = {"Content-Type": "application/json; charset=utf-8"}
        if path != "/w/api.php" or query.get("list") != ["recentchanges"]:
            return Reply(404, b"", json_type)
        if self.lagging:
            return Reply(200, b'{"error": {"code": "maxlag", "info": "Waiting for 10.64.48.35: 7 seconds lagged."}}',
                         {**json_type, "Retry-After": "7"})
        if query.get("rccontinue") == ["20241120091502|409211876"]:
            return Reply(200, recorded("recentchanges_page2"), json_type)
        if query.get("rcstart") == ["2024-11-20T09:30:10Z"]:
            return Reply(200, b'{"batchcomplete": true, "query": {"recentchanges": []}}', json_type)
        return Reply(200, recorded("recentchanges_page1"), json_type)


@pytest.fixture
def wiki() -> Iterator[tuple[ApiPhp, RouterServer]]:
    handler = ApiPhp()
    with serve(handler) as server:
        yield handler, server


def test_recent_changes_page_by_rccontinue_with_reply_edges(wiki: tuple[ApiPhp, RouterServer]) -> None:
    _, server = wiki
    host = server.url.removeprefix("http://")
    connector = MediaWikiRecentChangesConnector(f"{server.url}/w/api.php|ns=1", "wiki_test")
    pages = list(connector.fetch(None))
    assert [p.raw.body.encode() for p in pages] == [recorded("recentchanges_page1"), recorded("recentchanges_page2")]
    assert "rcnamespace=1" in server.requests[0] and "rcdir=newer" in server.requests[0]
    assert "rccontinue=20241120091502%7C409211876" in server.requests[1]
    posts = [p for page in pages for p in page.posts]
    assert [p.text for p in posts] == [
        "/* Pünktlichkeit 2024 */ neuer Abschnitt", "/* Pünktlichkeit 2024 */ Antwort: Quelle fehlt noch",
        "Neue Seite: Archivhinweis", "/* Pünktlichkeit 2024 */ Quelle ergänzt, danke", "Diskussion:Deutsche Bahn",
    ]
    assert posts[1].parent_post_id == f"{host}/rev/250113401" and posts[1].title == "Diskussion:Deutsche Bahn"
    edges = [(i.src_account_id.split("/user/")[1], i.dst_account_id.split("/user/")[1]) for page in pages for i in page.interactions]
    # Kuckuck1977 answered Schienenfreund; the IP answered Schienenfreund's follow-up (same page of results).
    assert edges == [("Kuckuck1977", "Schienenfreund"), ("93.184.216.34", "Schienenfreund")]
    assert [q.reason for q in pages[1].quarantined] == ["change: no user (hidden by revision deletion)"]
    assert pages[0].cursor.state == {"rccontinue": "20241120091502|409211876", "run_newest": "2024-11-20T08:51:19Z"}
    assert pages[1].cursor.state == {"rcstart": "2024-11-20T09:30:10Z"}
    later = list(MediaWikiRecentChangesConnector(f"{server.url}/w/api.php|ns=1", "wiki_test").fetch(pages[1].cursor))
    assert [len(p.posts) for p in later] == [0] and later[0].cursor.state == {"rcstart": "2024-11-20T09:30:10Z"}


def test_maxlag_keeps_the_cursor_and_raises_rate_limited(wiki: tuple[ApiPhp, RouterServer]) -> None:
    handler, server = wiki
    handler.lagging = True
    seen = []
    with pytest.raises(RateLimited) as caught:
        for page in MediaWikiRecentChangesConnector(f"{server.url}/w/api.php", "w").fetch(None):
            seen.append(page)
    assert caught.value.retry_after == 7.0
    assert seen[0].cursor.state == {} and seen[0].quarantined[0].reason.startswith("API error")


def test_stream_must_name_api_php() -> None:
    with pytest.raises(ValueError, match="api.php"):
        MediaWikiRecentChangesConnector("https://de.wikipedia.org/wiki/Deutsche_Bahn", "w")
