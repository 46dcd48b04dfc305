"""One contract every registered connector must meet, run against each of them offline."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from connectors.base import Connector, UnknownConnector
from connectors.records import Account, Cursor, Interaction, Page, Post, Quarantined, RawPayload, INTERACTION_KINDS
from connectors.registry import available_connectors, build_connector
from resonanz.settings import Settings, SourceSpec

from http_harness import LocalServer, Reply
from conformance_extra_cases import EXTRA_CASES

FIXTURES = Path(__file__).parents[1] / "fixtures"
X_PAGE = (FIXTURES / "x" / "public_api_sample_v2.json").read_text()
REDDIT_PAGE = (FIXTURES / "reddit" / "askreddit_comments.json").read_bytes()


Case = tuple[SourceSpec, dict[str, str]]


@contextmanager
def x_replay_case(server: LocalServer) -> Iterator[Case]:
    yield SourceSpec(name="c_x_replay", connector="x_replay", stream="bundled:x_germeval_db_de"), {}


@contextmanager
def x_case(server: LocalServer) -> Iterator[Case]:
    # tweepy hard-codes api.twitter.com; the `api_base` option sends its requests to the local server.
    server.route("/2/tweets/search/recent", Reply(200, X_PAGE.encode(), {"Content-Type": "application/json"}))
    spec = SourceSpec(name="c_x", connector="x", stream="Deutsche Bahn", options={"api_base": server.url})
    yield spec, {"x_bearer_token": "test-token"}


@contextmanager
def reddit_case(server: LocalServer) -> Iterator[Case]:
    server.route("/api/v1/access_token", Reply(200, b'{"access_token": "tok"}'))
    server.route("/r/askreddit/comments?limit=100&raw_json=1", Reply(200, REDDIT_PAGE))
    options = {"token_url": server.url + "/api/v1/access_token", "api_base": server.url, "max_pages": 1}
    spec = SourceSpec(name="c_reddit", connector="reddit", stream="r/askreddit/comments", options=options)
    yield spec, {"reddit_client_id": "id", "reddit_client_secret": "secret"}


@contextmanager
def rss_case(server: LocalServer) -> Iterator[Case]:
    yield SourceSpec(name="c_rss", connector="rss", stream="bundled:feeds/feeds.opml"), {}


CASES = {"x_replay": x_replay_case, "x": x_case, "reddit": reddit_case, "rss": rss_case}
CASES.update(EXTRA_CASES)  # Mastodon, Bluesky, YouTube, MediaWiki and the importers


def test_every_registered_connector_has_a_conformance_case() -> None:
    assert set(CASES) == set(available_connectors())
    assert all(description and "\n" not in description for description in available_connectors().values())


@pytest.mark.parametrize("name", sorted(CASES))
def test_connector_conforms(name: str, local_server: LocalServer) -> None:
    with CASES[name](local_server) as (spec, secrets):
        connector = build_connector(spec, Settings(sources=[spec], **secrets))
        assert isinstance(connector, Connector) and connector.name and connector.version
        pages = list(connector.fetch(None))
    assert pages, f"{name} yielded no page"
    for page in pages:
        assert isinstance(page, Page) and isinstance(page.raw, RawPayload)
        assert page.raw.body and page.raw.raw_id
        provenance = page.raw.provenance
        assert provenance.endpoint and provenance.connector_version == connector.version
        assert provenance.retrieved_at.tzinfo is not None
        assert isinstance(page.cursor, Cursor) and page.cursor.state
        assert (page.cursor.source, page.cursor.stream) == (spec.name, spec.stream)
        assert all(isinstance(p, Post) and p.source == connector.name and p.text for p in page.posts)
        assert all(isinstance(a, Account) and a.source == connector.name for a in page.accounts)
        assert all(isinstance(i, Interaction) and i.kind in INTERACTION_KINDS and i.src_account_id != i.dst_account_id
                   for i in page.interactions)
        assert all(isinstance(q, Quarantined) and q.reason and q.raw_id == page.raw.raw_id for q in page.quarantined)
        assert all(p.raw_id == page.raw.raw_id for p in page.posts)
        post_ids = [p.post_id for p in page.posts]
        account_ids = [a.account_id for a in page.accounts]
        assert len(post_ids) == len(set(post_ids)) and len(account_ids) == len(set(account_ids))
    assert sum(len(page.posts) for page in pages) > 0


def test_unknown_connector_names_the_available_ones() -> None:
    spec = SourceSpec(name="typo", connector="twiter", stream="q")
    with pytest.raises(UnknownConnector, match="available: .*x_replay"):
        build_connector(spec, Settings(sources=[spec]))
