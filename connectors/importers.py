"""Load history collected by other tools: twarc2 JSONL, 4CAT CSV/NDJSON exports and any CSV/NDJSON by a column mapping.

Every importer reads one file as a stream of pages (one twarc2 line, or a batch of rows) and
keeps the exact text of those lines as the page's raw payload. The cursor is the file's byte
offset and line number after the last stored page, so an interrupted import resumes where it
stopped and a finished one reads nothing again (a file that grew since is read from there on).
Records carry the platform the data came from (`x` for twarc2), so an imported tweet and the same
tweet collected live are one row. See docs/import_mapping.md for the column mapping.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from connectors.base import MalformedPayload, NotFound
from connectors.records import Account, Cursor, Interaction, Page, Post, Provenance, Quarantined, RawPayload
from connectors.x import parse_x_page

VERSION = "0.1.0"
ROWS_PER_PAGE = 500

# Our field -> the column that holds it. Only post_id and text are required.
RECORD_FIELDS = (
    "post_id", "text", "author_id", "author_handle", "author_name", "created_at", "url", "title", "lang",
    "parent_post_id", "parent_author_id", "conversation_id", "like_count", "repost_count", "reply_count",
    "quote_count", "mentions", "followers_count", "following_count",
)
DEFAULT_MAPPING: dict[str, str] = {name: name for name in RECORD_FIELDS}

# 4CAT's own export columns (its Twitter v2 data source maps tweets to these; other data sources
# share id, thread_id, timestamp, body, author and subject).
FOURCAT_MAPPING: dict[str, str] = {
    "post_id": "id", "text": "body", "title": "subject", "author_id": "author_id", "author_handle": "author",
    "author_name": "author_fullname", "created_at": "unix_timestamp", "conversation_id": "thread_id",
    "lang": "language_guess", "like_count": "like_count", "repost_count": "retweet_count",
    "reply_count": "reply_count", "quote_count": "quote_count", "mentions": "mentions", "reply_to_handle": "reply_to",
}


@dataclass(frozen=True, slots=True)
class _Chunk:
    """Some lines of the file: their exact text and where they start and end."""

    text: str
    start_offset: int
    end_offset: int
    start_line: int  # 1-based number of the first line
    end_line: int  # number of the last line


def _open_at(path: Path, offset: int) -> io.BufferedReader:
    try:
        handle = path.open("rb")
    except FileNotFoundError as exc:
        raise NotFound(f"import file not found: {path}") from exc
    handle.seek(offset)
    return handle  # type: ignore[return-value]


def _file_cursor(cursor: Cursor | None, path: Path) -> tuple[int, int]:
    if not path.is_file():
        raise NotFound(f"import file not found: {path}")
    state = cursor.state if cursor else {}
    if state.get("path") not in (None, str(path)):
        return 0, 0  # the stream now names another file: start over
    offset, line = int(state.get("offset", 0)), int(state.get("line", 0))
    if offset > path.stat().st_size:
        raise MalformedPayload(f"{path} is shorter than the stored cursor (offset {offset}); was it replaced?")
    return offset, line


def _decode(raw: bytes, path: Path, line: int) -> str:
    try:
        return raw.decode("utf-8-sig" if line == 1 else "utf-8")
    except UnicodeDecodeError:
        # Never drop a line for its encoding: keep it readable and let the parser quarantine it.
        return raw.decode("utf-8", errors="replace")


def iter_line_chunks(path: Path, offset: int, line: int, lines_per_chunk: int) -> Iterator[_Chunk]:
    """Yield chunks of whole lines from byte `offset` (which is after line number `line`)."""
    with _open_at(path, offset) as handle:
        parts: list[str] = []
        start_offset, start_line = offset, line + 1
        while True:
            raw = handle.readline()
            if not raw:
                break
            line += 1
            offset += len(raw)
            parts.append(_decode(raw, path, line))
            if len(parts) >= lines_per_chunk:
                yield _Chunk("".join(parts), start_offset, offset, start_line, line)
                parts, start_offset, start_line = [], offset, line + 1
        if parts:
            yield _Chunk("".join(parts), start_offset, offset, start_line, line)


def iter_csv_chunks(path: Path, offset: int, line: int, rows_per_chunk: int) -> Iterator[tuple[_Chunk, list[str], list[list[str]]]]:
    """Yield (chunk, header, rows) with whole CSV records (quoted newlines included) from byte `offset`."""
    with _open_at(path, 0) as handle:
        header_raw = handle.readline()
        header_text = _decode(header_raw, path, 1)
        header = next(csv.reader([header_text]))
        if offset < len(header_raw):
            offset, line = len(header_raw), 1
        handle.seek(offset)
        position = {"offset": offset, "line": line}

        def lines() -> Iterator[str]:
            while raw := handle.readline():
                position["offset"] += len(raw)
                position["line"] += 1
                yield _decode(raw, path, position["line"])

        reader = csv.reader(lines())
        rows: list[list[str]] = []
        start_offset, start_line = offset, line + 1
        for row in reader:
            rows.append(row)
            if len(rows) >= rows_per_chunk:
                yield _chunk_of(path, start_offset, position, start_line, header_text), header, rows
                rows, start_offset, start_line = [], position["offset"], position["line"] + 1
        if rows:
            yield _chunk_of(path, start_offset, position, start_line, header_text), header, rows


def _chunk_of(path: Path, start: int, position: dict[str, int], start_line: int, header_text: str) -> _Chunk:
    with path.open("rb") as handle:
        handle.seek(start)
        body = handle.read(position["offset"] - start).decode("utf-8", errors="replace")
    # The header travels with every page so each stored raw payload can be read on its own.
    return _Chunk(header_text + body, start, position["offset"], start_line, position["line"])


# --- mapping rows to records --------------------------------------------------------------------


def _value(row: Mapping[str, Any], mapping: Mapping[str, str], field: str) -> Any:
    column = mapping.get(field)
    if not column:
        return None
    value = row.get(column)
    return None if value in ("", None) else value


def _to_time(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, (int, float)) or (isinstance(value, str) and value.strip().lstrip("-").isdigit()):
        return datetime.fromtimestamp(int(value), timezone.utc)
    text = str(value).strip().replace("Z", "+00:00")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"date {value!r} is neither ISO-8601 nor unix seconds") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _to_int(value: Any) -> int | None:
    if value is None:
        return None
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return None


def _handles(value: Any) -> list[str]:
    if value is None:
        return []
    items = value if isinstance(value, list) else str(value).replace(";", ",").split(",")
    return [str(item).strip().lstrip("@") for item in items if str(item).strip().lstrip("@")]


def rows_to_page(rows: list[Mapping[str, Any]], mapping: Mapping[str, str], platform: str,
                 raw: RawPayload, cursor: Cursor, first_line: int) -> Page:
    """Map flat rows to a Page by `mapping` (our field -> column); rows without id or text are quarantined."""
    page = Page(raw=raw, cursor=cursor)
    accounts: dict[str, Account] = {}
    handle_to_id: dict[str, str] = {}
    parsed: list[tuple[Post, Mapping[str, Any]]] = []
    seen: set[str] = set()
    for number, row in enumerate(rows, start=first_line):
        try:
            post_id, text = _value(row, mapping, "post_id"), _value(row, mapping, "text")
            if post_id is None:
                raise ValueError(f"no {mapping.get('post_id')!r} (post id)")
            if text is None or not str(text).strip():
                raise ValueError(f"no {mapping.get('text')!r} (text)")
            handle = _value(row, mapping, "author_handle")
            author_id = _value(row, mapping, "author_id") or handle
            post = Post(
                source=platform, post_id=str(post_id), author_id=str(author_id) if author_id is not None else None,
                text=str(text), created_at=_to_time(_value(row, mapping, "created_at")),
                url=_value(row, mapping, "url"), title=_value(row, mapping, "title"),
                lang_hint=_value(row, mapping, "lang"), parent_post_id=_optional_str(_value(row, mapping, "parent_post_id")),
                conversation_id=_optional_str(_value(row, mapping, "conversation_id")),
                like_count=_to_int(_value(row, mapping, "like_count")), repost_count=_to_int(_value(row, mapping, "repost_count")),
                reply_count=_to_int(_value(row, mapping, "reply_count")), quote_count=_to_int(_value(row, mapping, "quote_count")),
                raw_id=raw.raw_id,
            )
        except (ValueError, TypeError) as exc:
            page.quarantined.append(Quarantined(platform, raw.raw_id, f"line {number}: {exc}",
                                                json.dumps(dict(row), ensure_ascii=False, default=str)))
            continue
        if post.post_id in seen:
            continue
        seen.add(post.post_id)
        page.posts.append(post)
        parsed.append((post, row))
        if post.author_id:
            if handle:
                handle_to_id[str(handle).lower()] = post.author_id
            accounts.setdefault(post.author_id, Account(
                source=platform, account_id=post.author_id, handle=str(handle) if handle else None,
                display_name=_optional_str(_value(row, mapping, "author_name")),
                followers_count=_to_int(_value(row, mapping, "followers_count")),
                following_count=_to_int(_value(row, mapping, "following_count")), raw_id=raw.raw_id,
            ))
    for post, row in parsed:
        _row_edges(page, post, row, mapping, handle_to_id, platform)
    page.accounts.extend(accounts.values())
    return page


def _optional_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _row_edges(page: Page, post: Post, row: Mapping[str, Any], mapping: Mapping[str, str],
               handle_to_id: dict[str, str], platform: str) -> None:
    actor = post.author_id
    if not actor:
        return

    def account_for(handle: str) -> str:
        # A handle never seen as an author in this page keeps an explicit "@handle" id.
        return handle_to_id.get(handle.lower(), f"@{handle}")

    seen: set[tuple[str, str]] = set()

    def add(kind: str, target: str | None, target_post: str | None) -> None:
        if target and target != actor and (kind, target) not in seen:
            seen.add((kind, target))
            page.interactions.append(Interaction(platform, kind, actor, target, post.post_id, target_post, post.created_at))

    parent_author = _value(row, mapping, "parent_author_id")
    reply_handle = _value(row, mapping, "reply_to_handle")
    if parent_author is not None:
        add("reply", str(parent_author), post.parent_post_id)
    elif reply_handle is not None:
        add("reply", account_for(str(reply_handle).lstrip("@")), post.parent_post_id)
    for handle in _handles(_value(row, mapping, "mentions")):
        add("mention", account_for(handle), None)


def _rebind(page: Page, raw: RawPayload) -> Page:
    """Point a page parsed from a reshaped body at the verbatim raw payload instead."""
    old = page.raw.raw_id
    for record in (*page.posts, *page.accounts):
        if record.raw_id == old:
            record.raw_id = raw.raw_id
    quarantined = [Quarantined(q.source, raw.raw_id, q.reason, q.fragment) for q in page.quarantined]
    return Page(raw=raw, cursor=page.cursor, posts=page.posts, accounts=page.accounts,
                interactions=page.interactions, quarantined=quarantined)


# --- connectors ---------------------------------------------------------------------------------


class _FileImporter:
    """Shared plumbing: file cursor, provenance and page stamping."""

    name = "import"
    version = VERSION
    connector = "import"

    def __init__(self, path: Path, source_name: str, stream: str) -> None:
        self.path = path
        self.source_name = source_name
        self.stream = stream

    def _provenance(self, chunk: _Chunk, retrieved_at: datetime | None = None) -> Provenance:
        # The endpoint names the file as configured and the lines, so a re-import yields the same raw ids.
        return Provenance(self.connector, f"{self.stream}#L{chunk.start_line}-L{chunk.end_line}",
                          retrieved_at or datetime.now(timezone.utc), self.version)

    def _cursor(self, chunk: _Chunk) -> Cursor:
        return Cursor(self.source_name, self.stream, {"path": str(self.path), "offset": chunk.end_offset, "line": chunk.end_line})


class Twarc2Importer(_FileImporter):
    """Import twarc2 output: each JSONL line an X API v2 response page (or, flattened, one tweet)."""

    name = "x"
    connector = "import_twarc2"

    def fetch(self, cursor: Cursor | None) -> Iterator[Page]:
        """Yield one page per line after the cursor's offset, parsed by the live X parser."""
        offset, line = _file_cursor(cursor, self.path)
        for chunk in iter_line_chunks(self.path, offset, line, 1):
            if not chunk.text.strip():
                continue
            body = chunk.text.rstrip("\r\n")
            try:
                document = json.loads(body)
            except json.JSONDecodeError:
                document = None
            meta = document.get("__twarc") if isinstance(document, dict) and isinstance(document.get("__twarc"), dict) else {}
            provenance = self._provenance(chunk, _retrieved_at(meta.get("retrieved_at")))
            raw = RawPayload(provenance, body)
            if isinstance(document, dict) and "data" not in document and "id" in document and "text" in document:
                # `twarc2 flatten` writes one tweet per line with its author inlined under "author".
                author = document.get("author")
                page_body = json.dumps({"data": [document], "includes": {"users": [author] if isinstance(author, dict) else []}})
                yield _rebind(parse_x_page(page_body, provenance, self._cursor(chunk)), raw)
            else:
                yield parse_x_page(body, provenance, self._cursor(chunk))


def _retrieved_at(value: Any) -> datetime | None:
    try:
        return _to_time(value) if value else None
    except ValueError:
        return None


class TableImporter(_FileImporter):
    """Import a CSV or NDJSON file whose columns are named by a mapping (4CAT's export columns by default for 4CAT)."""

    connector = "import_table"

    def __init__(self, path: Path, source_name: str, stream: str, *, platform: str,
                 mapping: Mapping[str, str] | None = None, rows_per_page: int = ROWS_PER_PAGE, file_format: str | None = None) -> None:
        super().__init__(path, source_name, stream)
        if not platform:
            raise ValueError("an import needs the platform its data came from (option `platform`, e.g. x, reddit, facebook)")
        unknown = set(mapping or {}) - set(RECORD_FIELDS) - {"reply_to_handle"}
        if unknown:
            raise ValueError(f"unknown mapping fields {sorted(unknown)}; known: {', '.join(RECORD_FIELDS)}")
        self.name = platform
        self.mapping = dict(mapping) if mapping is not None else dict(DEFAULT_MAPPING)
        self.rows_per_page = rows_per_page
        suffix = path.suffix.lower()
        self.file_format = file_format or ("csv" if suffix in (".csv", ".tsv") else "ndjson")

    def fetch(self, cursor: Cursor | None) -> Iterator[Page]:
        """Yield a page per batch of rows after the cursor's offset."""
        offset, line = _file_cursor(cursor, self.path)
        if self.file_format == "csv":
            for chunk, header, rows in iter_csv_chunks(self.path, offset, line, self.rows_per_page):
                raw = RawPayload(self._provenance(chunk), chunk.text, content_type="text/csv")
                records = [dict(zip(header, row)) for row in rows]
                yield rows_to_page(records, self.mapping, self.name, raw, self._cursor(chunk), chunk.start_line)
            return
        for chunk in iter_line_chunks(self.path, offset, line, self.rows_per_page):
            raw = RawPayload(self._provenance(chunk), chunk.text, content_type="application/x-ndjson")
            yield self._ndjson_page(chunk, raw)

    def _ndjson_page(self, chunk: _Chunk, raw: RawPayload) -> Page:
        rows: list[Mapping[str, Any]] = []
        tweets: list[dict[str, Any]] = []
        bad: list[Quarantined] = []
        for number, text in enumerate(chunk.text.splitlines(), start=chunk.start_line):
            if not text.strip():
                continue
            try:
                item = json.loads(text)
            except json.JSONDecodeError as exc:
                bad.append(Quarantined(self.name, raw.raw_id, f"line {number}: malformed JSON: {exc}", text))
                continue
            if not isinstance(item, dict):
                bad.append(Quarantined(self.name, raw.raw_id, f"line {number}: not a JSON object", text))
            elif self.name == "x" and "author_user" in item and "text" in item:
                tweets.append(item)  # 4CAT keeps X API v2 tweets as collected, author inlined
            else:
                rows.append(item)
        page = rows_to_page(rows, self.mapping, self.name, raw, self._cursor(chunk), chunk.start_line)
        if tweets:
            users = [t["author_user"] for t in tweets if isinstance(t.get("author_user"), dict)]
            body = json.dumps({"data": tweets, "includes": {"users": users}})
            parsed = _rebind(parse_x_page(body, raw.provenance, page.cursor), raw)
            known_posts = {p.post_id for p in page.posts}
            known_accounts = {a.account_id for a in page.accounts}
            page.posts.extend(p for p in parsed.posts if p.post_id not in known_posts)
            page.accounts.extend(a for a in parsed.accounts if a.account_id not in known_accounts)
            page.interactions.extend(parsed.interactions)
            page.quarantined.extend(parsed.quarantined)
        page.quarantined.extend(bad)
        return page


def fourcat_importer(path: Path, source_name: str, stream: str, *, platform: str = "x", rows_per_page: int = ROWS_PER_PAGE) -> TableImporter:
    """Build an importer for a 4CAT CSV or NDJSON export (4CAT's column names)."""
    importer = TableImporter(path, source_name, stream, platform=platform, mapping=FOURCAT_MAPPING, rows_per_page=rows_per_page)
    importer.connector = "import_4cat"
    return importer
