"""Reddit listings: real recorded bodies served from 127.0.0.1 through the shared HTTP client."""

from __future__ import annotations

import base64
import json
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import pytest

from connectors.base import MissingCredential
from connectors.http import HttpClient
from connectors.records import Cursor, Provenance
from connectors.reddit import RedditConnector, parse_reddit_listing
from connectors.registry import build_connector
from resonanz.settings import Settings, SourceSpec

from http_harness import FakeClock, LocalServer, Reply

FIXTURES = Path(__file__).parents[1] / "fixtures" / "reddit"
NEW = (FIXTURES / "askreddit_new.json").read_bytes()  # after = t3_48f6io
LAST = (FIXTURES / "all_search_last_page.json").read_bytes()  # after = null
COMMENTS = (FIXTURES / "askreddit_comments.json").read_text()
TOKEN = json.dumps({"access_token": "tok", "token_type": "bearer", "expires_in": 3600}).encode()


def serve_reddit(server: LocalServer) -> None:
    server.route("/api/v1/access_token", Reply(200, TOKEN, {"Content-Type": "application/json"}))
    server.route("/r/askreddit/new?limit=100&raw_json=1", Reply(200, NEW, {"Content-Type": "application/json"}))
    server.route("/r/askreddit/new?limit=100&raw_json=1&after=t3_48f6io", Reply(200, LAST, {"Content-Type": "application/json"}))


def connector(server: LocalServer, clock: FakeClock) -> RedditConnector:
    http = HttpClient(sleep=clock.sleep, clock=clock.time)
    return RedditConnector("r/askreddit", "reddit_ask", "id", "secret", http=http,
                           token_url=server.url + "/api/v1/access_token", api_base=server.url)


def test_missing_credentials_name_the_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RESONANZ_REDDIT_CLIENT_ID", raising=False)
    spec = SourceSpec(name="r", connector="reddit", stream="r/de")
    with pytest.raises(MissingCredential, match="RESONANZ_REDDIT_CLIENT_ID"):
        build_connector(spec, Settings(sources=[spec]))


def test_pages_through_after_with_app_only_oauth(local_server: LocalServer, clock: FakeClock) -> None:
    serve_reddit(local_server)
    pages = list(connector(local_server, clock).fetch(None))
    assert [len(page.posts) for page in pages] == [25, 6]
    assert pages[0].raw.body == NEW.decode()
    token_request, first, second = local_server.requests
    assert token_request.method == "POST" and token_request.body == b"grant_type=client_credentials"
    assert token_request.headers["authorization"] == "Basic " + base64.b64encode(b"id:secret").decode()
    assert first.headers["authorization"] == second.headers["authorization"] == "bearer tok"
    assert pages[0].cursor.state["after"] == "t3_48f6io"
    newest = max(json.loads(NEW)["data"]["children"][i]["data"]["created_utc"] for i in range(25))
    assert pages[1].cursor.state == {"newest_utc": max(newest, *(c["data"]["created_utc"] for c in json.loads(LAST)["data"]["children"]))}
    first_post = pages[0].posts[0]
    assert (first_post.post_id, first_post.author_id) == ("t3_48fbm9", "RedHeadQc")
    assert first_post.title.startswith("[Serious] Parents of Reddit")
    assert first_post.created_at == datetime.fromtimestamp(1456821458.0, tz=timezone.utc)


def test_next_run_stops_at_the_first_page_with_known_items(local_server: LocalServer, clock: FakeClock) -> None:
    serve_reddit(local_server)
    newest = max(c["data"]["created_utc"] for c in json.loads(NEW)["data"]["children"])
    pages = list(connector(local_server, clock).fetch(Cursor("reddit_ask", "r/askreddit", {"newest_utc": newest})))
    assert len(pages) == 1 and pages[0].cursor.state == {"newest_utc": newest}
    assert [r.path for r in local_server.requests if r.method == "GET"] == ["/r/askreddit/new?limit=100&raw_json=1"]


def test_comment_replies_point_at_the_parent_author() -> None:
    page = parse_reddit_listing(COMMENTS, Provenance("reddit", "t", datetime.now(timezone.utc), "t"), Cursor("a", "b"))
    comment = next(p for p in page.posts if p.post_id == "t1_d4y8bdp")
    assert comment.parent_post_id == comment.conversation_id == "t3_4r4inc"
    edge = next(e for e in page.interactions if e.post_id == "t1_d4y8bdp")
    assert (edge.kind, edge.src_account_id, edge.dst_account_id, edge.target_post_id) == ("reply", "preppypuppy", "Steelers565", "t3_4r4inc")
    assert Counter(e.kind for e in page.interactions) == {"reply": 15}


def test_removed_comment_is_quarantined() -> None:
    listing = json.loads(COMMENTS)
    listing["data"]["children"][0]["data"]["body"] = "[removed]"
    page = parse_reddit_listing(json.dumps(listing), Provenance("reddit", "t", datetime.now(timezone.utc), "t"), Cursor("a", "b"))
    assert len(page.posts) == 24
    assert [q.reason for q in page.quarantined] == ["no usable text (empty, deleted or removed)"]
