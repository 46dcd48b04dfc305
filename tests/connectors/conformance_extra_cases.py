"""Conformance cases for the Mastodon, Bluesky, YouTube, MediaWiki and import connectors (same pattern as the core cases)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from resonanz.settings import SourceSpec

from http_harness import LocalServer, Reply

FIXTURES = Path(__file__).parents[1] / "fixtures"
JSON = {"Content-Type": "application/json; charset=utf-8"}

Case = tuple[SourceSpec, dict[str, str]]


def _recorded_body(path: Path) -> bytes:
    return json.dumps(json.loads(path.read_text(encoding="utf-8"))["body"]).encode()


@contextmanager
def mastodon_case(server: LocalServer) -> Iterator[Case]:
    server.route("/api/v2/instance/", Reply(200, _recorded_body(FIXTURES / "mastodon" / "test_hashtag_tl__01.json"), JSON))
    headers = {**JSON, "X-RateLimit-Limit": "300", "X-RateLimit-Remaining": "299", "X-RateLimit-Reset": "2099-01-01T00:00:00Z"}
    server.route("/api/v1/timelines/tag/hoot", Reply(200, _recorded_body(FIXTURES / "mastodon" / "test_public_tl__02.json"), headers))
    yield SourceSpec(name="c_mastodon", connector="mastodon", stream=f"{server.url}|#hoot"), {}


@contextmanager
def bluesky_case(server: LocalServer) -> Iterator[Case]:
    server.route("/xrpc/app.bsky.feed.searchPosts", Reply(200, (FIXTURES / "bluesky" / "searchPosts_page2.json").read_bytes(), JSON))
    yield SourceSpec(name="c_bluesky", connector="bluesky", stream="search:Deutsche Bahn", options={"base_url": server.url}), {}


@contextmanager
def youtube_case(server: LocalServer) -> Iterator[Case]:
    server.route("/youtube/v3/commentThreads", Reply(200, (FIXTURES / "youtube" / "comment_threads_by_channel.json").read_bytes(), JSON))
    previous = os.environ.get("RESONANZ_YOUTUBE_API_KEY")
    os.environ["RESONANZ_YOUTUBE_API_KEY"] = "test-key"
    try:
        spec = SourceSpec(name="c_youtube", connector="youtube", stream="channel:UC_x5XG1OV2P6uZZ5FSM9Ttw",
                          options={"base_url": server.url + "/youtube/v3"})
        yield spec, {}
    finally:
        if previous is None:
            os.environ.pop("RESONANZ_YOUTUBE_API_KEY", None)
        else:
            os.environ["RESONANZ_YOUTUBE_API_KEY"] = previous


@contextmanager
def mediawiki_case(server: LocalServer) -> Iterator[Case]:
    server.route("/w/api.php", Reply(200, (FIXTURES / "mediawiki" / "recentchanges_page2.json").read_bytes(), JSON))
    yield SourceSpec(name="c_mediawiki", connector="mediawiki", stream=f"{server.url}/w/api.php|ns=1"), {}


def _file_case(connector: str, path: Path, **options: object):  # type: ignore[no-untyped-def]
    @contextmanager
    def case(server: LocalServer) -> Iterator[Case]:
        yield SourceSpec(name=f"c_{connector}", connector=connector, stream=str(path), options=dict(options)), {}

    return case


EXTRA_CASES = {
    "mastodon": mastodon_case,
    "bluesky": bluesky_case,
    "youtube": youtube_case,
    "mediawiki": mediawiki_case,
    "import_twarc2": _file_case("import_twarc2", FIXTURES / "importers" / "twarc2_search.jsonl"),
    "import_4cat": _file_case("import_4cat", FIXTURES / "importers" / "4cat_germeval_de.csv"),
    "import_table": _file_case("import_table", FIXTURES / "importers" / "generic_listening_export.csv", platform="x", mapping={
        "post_id": "Mention Id", "created_at": "Date", "author_id": "Author", "text": "Full Text",
        "parent_post_id": "Reply To Id", "parent_author_id": "Reply To Author", "conversation_id": "Thread"}),
    "import_facebook": _file_case("import_facebook", FIXTURES / "facebook" / "comments.json"),
}
