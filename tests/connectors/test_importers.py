"""Importers: twarc2 JSONL, 4CAT CSV/NDJSON and mapped CSV built from the bundled real samples."""

from __future__ import annotations

import shutil
from datetime import datetime, timezone
from pathlib import Path

import pytest

from connectors.base import NotFound
from connectors.importers import TableImporter, Twarc2Importer, fourcat_importer
from connectors.records import Cursor, Provenance
from connectors.x import parse_x_page

from http_harness import FIXTURES

HERE = FIXTURES / "importers"
GENERIC_MAPPING = {
    "post_id": "Mention Id", "created_at": "Date", "author_id": "Author", "text": "Full Text",
    "parent_post_id": "Reply To Id", "parent_author_id": "Reply To Author", "conversation_id": "Thread",
}


def twarc(path: Path) -> Twarc2Importer:
    return Twarc2Importer(path, "archive", str(path))


def test_twarc2_lines_parse_exactly_like_live_x_pages() -> None:
    path = HERE / "twarc2_search.jsonl"
    pages = list(twarc(path).fetch(None))
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [p.raw.body for p in pages] == lines  # each stored raw payload is the line as written
    assert [len(p.posts) for p in pages] == [6, 6, 6]
    direct = parse_x_page(lines[0], Provenance("x", "e", datetime.now(timezone.utc), "0"), Cursor("a", "b"))
    assert [(p.post_id, p.text, p.parent_post_id) for p in pages[0].posts] == [(p.post_id, p.text, p.parent_post_id) for p in direct.posts]
    assert [(i.kind, i.src_account_id, i.dst_account_id) for i in pages[0].interactions] == \
        [(i.kind, i.src_account_id, i.dst_account_id) for i in direct.interactions]
    assert all(p.source == "x" for page in pages for p in page.posts)
    # Provenance keeps twarc's own retrieval time and names the file and line.
    assert pages[1].raw.provenance.retrieved_at == datetime(2024, 3, 1, 10, 0, 1, tzinfo=timezone.utc)
    assert pages[1].raw.provenance.endpoint == f"{path}#L2-L2"
    assert pages[-1].cursor.state == {"path": str(path), "offset": path.stat().st_size, "line": 3}


def test_twarc2_import_resumes_and_a_finished_file_reads_nothing_again(tmp_path: Path) -> None:
    path = tmp_path / "collection.jsonl"
    shutil.copy(HERE / "twarc2_search.jsonl", path)
    first = next(twarc(path).fetch(None))  # interrupted after one stored page
    rest = list(twarc(path).fetch(first.cursor))
    ids = [p.post_id for page in [first, *rest] for p in page.posts]
    assert len(ids) == len(set(ids)) == 18
    assert list(twarc(path).fetch(rest[-1].cursor)) == []
    # twarc2 appends to its output: the next run reads only what was added.
    with path.open("a", encoding="utf-8") as handle:
        handle.write((HERE / "twarc2_flat.jsonl").read_text(encoding="utf-8").splitlines()[0] + "\n")
    added = list(twarc(path).fetch(rest[-1].cursor))
    assert [p.post_id for page in added for p in page.posts] == ["26"]
    # Same file, same lines: re-importing yields identical raw ids (idempotent downstream).
    again = list(twarc(path).fetch(None))
    assert [p.raw.raw_id for p in again[:3]] == [p.raw.raw_id for p in [first, *rest]]


def test_twarc2_flattened_lines_and_broken_lines(tmp_path: Path) -> None:
    pages = list(twarc(HERE / "twarc2_flat.jsonl").fetch(None))
    assert [p.post_id for page in pages for p in page.posts] == ["26", "27", "23"]
    assert all(post.raw_id == page.raw.raw_id and page.raw.body.startswith('{"id": ') for page in pages for post in page.posts)
    assert pages[0].accounts[0].account_id == "115716"
    assert pages[0].interactions[0].kind == "reply" and pages[0].interactions[0].dst_account_id == "Ask_Spectrum"
    broken = tmp_path / "broken.jsonl"
    lines = (HERE / "twarc2_search.jsonl").read_text(encoding="utf-8").splitlines()
    broken.write_text(lines[0] + "\n" + lines[1][:300] + "\n" + lines[2] + "\n", encoding="utf-8")
    pages = list(twarc(broken).fetch(None))
    assert [len(p.posts) for p in pages] == [6, 0, 6]
    assert pages[1].quarantined[0].reason.startswith("malformed JSON") and pages[1].raw.body == lines[1][:300]


def test_4cat_csv_of_real_german_tweets_resumes_by_byte_offset() -> None:
    path = HERE / "4cat_germeval_de.csv"
    pages = list(fourcat_importer(path, "fourcat", str(path), rows_per_page=5).fetch(None))
    assert [len(p.posts) for p in pages] == [5, 5, 2]
    header = path.read_bytes().decode("utf-8").splitlines(keepends=True)[0]
    assert all(p.raw.body.startswith(header) and p.raw.content_type == "text/csv" for p in pages)
    first = pages[0].posts[0]
    assert first.post_id == "616551942341300224" and first.source == "x"
    assert first.text.startswith("#TelMi #telmi Laim: Fußgänger von S-Bahn erfasst")
    assert first.created_at == datetime(2015, 7, 2, 10, 20, 12, tzinfo=timezone.utc)
    assert first.conversation_id == "616551942341300224" and first.like_count is None
    mentions = {(i.src_account_id, i.dst_account_id) for page in pages for i in page.interactions}
    assert ("lolloseb", "@DB_Bahn") in mentions and ("lolloseb", "@KuttnerSarah") in mentions
    resumed = list(fourcat_importer(path, "fourcat", str(path), rows_per_page=5).fetch(pages[0].cursor))
    assert [p.post_id for page in resumed for p in page.posts] == [p.post_id for page in pages[1:] for p in page.posts]
    assert pages[0].cursor.state["line"] == 6 and resumed[-1].cursor.state["offset"] == path.stat().st_size


def test_4cat_ndjson_with_x_items_uses_the_x_parser() -> None:
    path = HERE / "4cat_twcs_en.ndjson"
    pages = list(fourcat_importer(path, "fourcat", str(path)).fetch(None))
    assert len(pages) == 1 and len(pages[0].posts) == 8
    assert pages[0].raw.body == path.read_text(encoding="utf-8")
    assert {i.kind for i in pages[0].interactions} == {"reply", "mention"}
    assert all(p.raw_id == pages[0].raw.raw_id for p in pages[0].posts)


def test_generic_mapping_keeps_multiline_text_and_reply_edges() -> None:
    path = HERE / "generic_listening_export.csv"
    importer = TableImporter(path, "agency", str(path), platform="x", mapping=GENERIC_MAPPING, rows_per_page=3)
    pages = list(importer.fetch(None))
    posts = [p for page in pages for p in page.posts]
    assert len(posts) == 10 and posts[0].text.startswith("@115776 Hi Keelin,\nSorry for the inconvenience.")
    assert posts[0].parent_post_id == "290" and posts[0].conversation_id == "290"
    assert ("reply", "AdobeCare", "115776", "289", "290") in {
        (i.kind, i.src_account_id, i.dst_account_id, i.post_id, i.target_post_id) for page in pages for i in page.interactions
    }
    # Resume from the middle: quoted newlines did not shift the byte offsets.
    resumed = list(TableImporter(path, "agency", str(path), platform="x", mapping=GENERIC_MAPPING, rows_per_page=3).fetch(pages[1].cursor))
    assert [p.post_id for page in resumed for p in page.posts] == [p.post_id for p in posts[6:]]


def test_bad_rows_are_quarantined_with_their_line(tmp_path: Path) -> None:
    path = tmp_path / "export.ndjson"
    path.write_text('{"post_id": "1", "text": "Gute Fahrt!", "author_id": "a", "created_at": 1435832412}\n'
                    '{"post_id": "2", "text": ""}\n{"post_id": "3", "text": "x", "created_at": "gestern"}\nnot json\n',
                    encoding="utf-8")
    page = next(TableImporter(path, "t", str(path), platform="reddit").fetch(None))
    assert [p.post_id for p in page.posts] == ["1"] and page.posts[0].source == "reddit"
    assert [q.reason for q in page.quarantined] == [
        "line 2: no 'text' (text)", "line 3: date 'gestern' is neither ISO-8601 nor unix seconds", "line 4: malformed JSON: Expecting value: line 1 column 1 (char 0)",
    ]


def test_clear_errors_for_missing_files_and_bad_mappings(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="import file not found"):
        list(twarc(tmp_path / "nope.jsonl").fetch(None))
    with pytest.raises(ValueError, match="unknown mapping fields"):
        TableImporter(tmp_path / "x.csv", "t", "s", platform="x", mapping={"body": "text"})
    with pytest.raises(ValueError, match="platform"):
        TableImporter(tmp_path / "x.csv", "t", "s", platform="")
