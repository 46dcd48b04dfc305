"""Facebook export import: posts and comments from "Download your information" JSON files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from connectors.base import MalformedPayload, NotFound
from connectors.facebook_export import FacebookExportImporter, repair_text

from http_harness import FIXTURES

HERE = FIXTURES / "facebook"
PAGE = "name:Bäckerei Müller Frankfurt"


def test_posts_are_read_oldest_first_with_repaired_text_and_link_edges() -> None:
    path = HERE / "your_posts_1.json"
    pages = list(FacebookExportImporter(path, "fb", str(path), owner="Bäckerei Müller Frankfurt").fetch(None))
    page = pages[0]
    assert [p.text for p in page.posts] == [
        "Schöner Bericht über unsere Filiale am Südbahnhof.", "Wir haben die Störung auf der S1 behoben. Danke für eure Geduld! 🚆",
    ]
    assert {p.author_id for p in page.posts} == {PAGE}
    assert [q.reason for q in page.quarantined] == ["item has no text (photo, check-in or reaction only)"]
    assert [(i.kind, i.dst_account_id) for i in page.interactions] == [("link", "site:hessenschau.de")]
    assert page.cursor.state["index"] == 3 and page.posts[0].created_at.year == 2024


def test_comments_become_reply_edges_between_names() -> None:
    path = HERE / "comments.json"
    page = next(FacebookExportImporter(path, "fb", str(path)).fetch(None))
    assert [p.author_id for p in page.posts] == ["name:Tom Baker", PAGE, "name:Jana Pendelt"]
    assert {(i.src_account_id, i.dst_account_id) for i in page.interactions} == {
        ("name:Tom Baker", PAGE), (PAGE, "name:Jana Pendelt"), ("name:Jana Pendelt", PAGE),
    }
    assert {a.display_name for a in page.accounts} == {"Tom Baker", "Bäckerei Müller Frankfurt", "Jana Pendelt"}


def test_resume_by_index_and_a_new_export_is_read_again(tmp_path: Path) -> None:
    path = tmp_path / "comments.json"
    shutil.copy(HERE / "comments.json", path)
    first = next(FacebookExportImporter(path, "fb", str(path), items_per_page=2).fetch(None))
    rest = list(FacebookExportImporter(path, "fb", str(path), items_per_page=2).fetch(first.cursor))
    assert [len(p.posts) for p in [first, *rest]] == [2, 1]
    assert list(FacebookExportImporter(path, "fb", str(path)).fetch(rest[-1].cursor)) == []
    document = json.loads(path.read_text(encoding="utf-8"))
    document["comments_v2"].insert(0, {"timestamp": 1732096000, "data": [{"comment": {"timestamp": 1732096000,
                                       "comment": "Noch offen?", "author": "Tom Baker"}}], "title": "Tom Baker commented on x's post."})
    path.write_text(json.dumps(document), encoding="utf-8")
    again = list(FacebookExportImporter(path, "fb", str(path)).fetch(rest[-1].cursor))
    assert len(again[0].posts) == 4  # a new export is read whole; the 3 known posts are upserts downstream
    assert {p.post_id for p in again[0].posts} >= {p.post_id for p in [*first.posts, *rest[0].posts]}


def test_errors_and_text_repair(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        list(FacebookExportImporter(tmp_path / "missing.json", "fb", "x").fetch(None))
    bad = tmp_path / "bad.json"
    bad.write_text('{"something": 1}', encoding="utf-8")
    with pytest.raises(MalformedPayload):
        list(FacebookExportImporter(bad, "fb", "x").fetch(None))
    assert repair_text("St\u00c3\u00b6rung") == "Störung" and repair_text("Störung") == "Störung"
