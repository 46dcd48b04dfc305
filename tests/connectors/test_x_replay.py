"""Replaying the bundled real X sample: a crash after page 2 resumes without losing or repeating a tweet."""

from __future__ import annotations

import json

import pytest

from connectors.base import NotFound
from connectors.records import Page
from connectors.registry import build_connector
from resonanz.settings import SAMPLE_DIR, Settings, SourceSpec

SPEC = SourceSpec(name="x_sample_en", connector="x_replay", stream="bundled:x_twcs_en")


def recorded_ids() -> list[str]:
    pages = sorted((SAMPLE_DIR / "x_twcs_en").glob("page-*.json"))
    return [tweet["id"] for path in pages for tweet in json.loads(path.read_text())["data"]]


def test_resume_after_a_crash_stores_every_tweet_exactly_once() -> None:
    settings = Settings(sources=[SPEC])
    stored: list[Page] = []
    run = build_connector(SPEC, settings).fetch(None)
    for page in run:
        stored.append(page)  # the flow stores page + cursor in one transaction
        if len(stored) == 2:
            run.close()  # the process dies here
            break
    cursor = stored[-1].cursor
    assert (cursor.source, cursor.stream, cursor.state) == ("x_sample_en", "bundled:x_twcs_en", {"last_page": "page-0002.json"})

    stored.extend(build_connector(SPEC, settings).fetch(cursor))

    ids = [post.post_id for page in stored for post in page.posts]
    assert len(ids) == len(set(ids)) == 2003
    assert ids == recorded_ids()
    assert stored[-1].cursor.state == {"last_page": "page-0021.json"}
    assert list(build_connector(SPEC, settings).fetch(stored[-1].cursor)) == []


def test_replay_is_idempotent_raw_ids_do_not_change() -> None:
    settings = Settings(sources=[SPEC])
    first = [page.raw.raw_id for page in build_connector(SPEC, settings).fetch(None)]
    second = [page.raw.raw_id for page in build_connector(SPEC, settings).fetch(None)]
    assert first == second and len(set(first)) == 21


def test_missing_folder_raises_not_found() -> None:
    spec = SourceSpec(name="gone", connector="x_replay", stream="bundled:no_such_sample")
    with pytest.raises(NotFound, match="no_such_sample"):
        list(build_connector(spec, Settings(sources=[spec])).fetch(None))
