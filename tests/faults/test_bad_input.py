"""Property tests on every parser: garbage never escapes as an unhandled exception; it is quarantined or a clear error.

Inputs are random bytes/JSON and mutations of the real recorded payloads (X, Reddit, feeds, the CRM export).
"""

from __future__ import annotations

import json
import random
import tempfile
import tomllib
from contextlib import closing
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from connectors.records import Cursor, Page, Provenance
from connectors.reddit import parse_reddit_listing
from connectors.rss import parse_feed, read_opml
from connectors.x import parse_x_page
from connectors.base import MalformedPayload
from resonanz.settings import SAMPLE_DIR, Settings, load_settings
from warehouse.crm import CrmImportError, import_customers
from warehouse.db import open_warehouse

from faultkit import FIXTURES

X_PAGE = json.loads((FIXTURES / "x" / "public_api_sample_v2.json").read_text())
REDDIT = json.loads((FIXTURES / "reddit" / "askreddit_comments.json").read_text())
FEEDS = [(SAMPLE_DIR / "feeds" / name).read_bytes()[:20_000] for name in ("CRE.xml", "google_alerts_atom.xml")]
JSON_FEED = (FIXTURES / "rss" / "json_feed.json").read_bytes()
CUSTOMERS = (SAMPLE_DIR / "crm" / "customers.csv").read_text().splitlines()[:30]
PROPERTY = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_scalars = st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True) | st.text(max_size=30)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4), max_leaves=20)


def provenance() -> Provenance:
    return Provenance("test", "fuzz", datetime(2026, 11, 24, tzinfo=timezone.utc), "t")


def mutate(document: Any, rng: random.Random, replacement: Any) -> Any:
    """Replace one random node of a JSON document (object field, list item or the root) with `replacement`."""
    if rng.random() < 0.08 or not isinstance(document, (dict, list)) or not document:
        return replacement
    if isinstance(document, dict):
        key = rng.choice(list(document))
        return {**document, key: mutate(document[key], rng, replacement)}
    index = rng.randrange(len(document))
    return [*document[:index], mutate(document[index], rng, replacement), *document[index + 1:]]


def check_page(page: Page, body: str) -> None:
    """What every parser promises: the raw body is kept, every record is usable, every reject has a reason."""
    assert page.raw.body == body
    for post in page.posts:
        assert isinstance(post.post_id, str) and post.post_id and isinstance(post.text, str)
        assert post.created_at is None or post.created_at.tzinfo is not None
    for account in page.accounts:
        assert isinstance(account.account_id, str) and account.account_id
    for item in page.quarantined:
        assert item.reason and item.raw_id == page.raw.raw_id


def json_dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=True)


# --- X API pages ---------------------------------------------------------------------------------


@PROPERTY
@given(st.text(max_size=300))
def test_x_parser_survives_any_text(body: str) -> None:
    check_page(parse_x_page(body, provenance(), Cursor("s", "q")), body)


@PROPERTY
@given(json_values)
def test_x_parser_survives_any_json(value: Any) -> None:
    body = json_dumps(value)
    check_page(parse_x_page(body, provenance(), Cursor("s", "q")), body)


@PROPERTY
@given(st.randoms(use_true_random=False), json_values, st.integers(1, 4))
def test_x_parser_survives_mutated_real_pages(rng: random.Random, replacement: Any, times: int) -> None:
    document = X_PAGE
    for _ in range(times):
        document = mutate(document, rng, replacement)
    body = json_dumps(document)
    page = parse_x_page(body, provenance(), Cursor("s", "q"))
    check_page(page, body)
    # Tweets are stored or quarantined, never silently dropped (a repeated id is the only skip).
    data = document.get("data") if isinstance(document, dict) else None
    handled = len(page.posts) + sum(q.reason.startswith("tweet:") for q in page.quarantined)
    if isinstance(data, list):
        assert handled <= len(data) and (handled >= 1 or not data)


# --- Reddit listings -------------------------------------------------------------------------------


@PROPERTY
@given(st.text(max_size=300) | json_values.map(json_dumps))
def test_reddit_parser_survives_any_text_and_json(body: str) -> None:
    check_page(parse_reddit_listing(body, provenance(), Cursor("s", "r")), body)


@PROPERTY
@given(st.randoms(use_true_random=False), json_values, st.integers(1, 4))
def test_reddit_parser_survives_mutated_real_listings(rng: random.Random, replacement: Any, times: int) -> None:
    document = REDDIT
    for _ in range(times):
        document = mutate(document, rng, replacement)
    body = json_dumps(document)
    check_page(parse_reddit_listing(body, provenance(), Cursor("s", "r")), body)


# --- feeds -------------------------------------------------------------------------------------------


def byte_mutations(original: bytes) -> st.SearchStrategy[bytes]:
    cut = st.integers(0, len(original)).map(lambda n: original[:n])
    splice = st.tuples(st.integers(0, len(original)), st.integers(0, 200), st.binary(max_size=60)).map(
        lambda t: original[: t[0]] + t[2] + original[t[0] + t[1]:])
    return cut | splice


@PROPERTY
@given(st.binary(max_size=400) | st.sampled_from(FEEDS + [JSON_FEED]).flatmap(byte_mutations))
def test_feed_parser_survives_garbage_and_mutated_real_feeds(body: bytes) -> None:
    page = parse_feed(body, provenance(), Cursor("s", "f"))
    assert page.raw.body  or body.strip() == b""  or page.quarantined or page.posts or page.raw.body == ""
    for post in page.posts:
        assert post.post_id and isinstance(post.text, str)
    for item in page.quarantined:
        assert item.reason


@PROPERTY
@given(st.randoms(use_true_random=False), json_values, st.integers(1, 4))
def test_json_feed_parser_survives_mutated_real_feed(rng: random.Random, replacement: Any, times: int) -> None:
    document = json.loads(JSON_FEED)
    for _ in range(times):
        document = mutate(document, rng, replacement)
    body = json_dumps(document).encode()
    page = parse_feed(body, provenance(), Cursor("s", "f"))
    check_page(page, body.decode())


xml_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40)


@PROPERTY
@given(st.lists(st.tuples(xml_text, xml_text, xml_text), max_size=5), xml_text)
def test_feed_parser_handles_hostile_entry_fields(items: list[tuple[str, str, str]], title: str) -> None:
    # Raw (unescaped) text inside the XML on purpose: markup, entities and control characters from the strategy.
    entries = "".join(f"<item><title>{t}</title><link>{link}</link><description>{d}</description></item>"
                      for t, link, d in items)
    body = f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>{title}</title>{entries}</channel></rss>'
    page = parse_feed(body.encode("utf-8", "surrogatepass"), provenance(), Cursor("s", "f"))
    for post in page.posts:
        assert post.post_id and post.text


@PROPERTY
@given(st.binary(max_size=300) | st.text(max_size=200).map(lambda t: f"<opml><body><outline xmlUrl='{t}'/></body></opml>".encode()))
def test_opml_reader_returns_urls_or_a_named_error(body: bytes) -> None:
    try:
        feeds = read_opml(body, "https://lists.example/list.opml")
    except MalformedPayload as exc:
        assert "OPML" in str(exc)
        return
    assert all(feed.startswith(("http://", "https://")) for feed in feeds)


# --- configuration: settings and brand lists ---------------------------------------------------------

toml_keys = st.sampled_from(["duckdb_path", "report_dir", "brands", "sources", "graph", "alerts", "smtp", "crm", "x_bearer_token"])
toml_values = st.recursive(
    st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["name", "kind", "aliases", "handles", "connector", "stream", "damping", "weights", "port"]), inner, max_size=3),
    max_leaves=10,
)


def write_toml(document: dict[str, Any]) -> str:
    """Serialise a small document to TOML (tomllib only reads): inline tables and arrays are enough."""
    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v) if not isinstance(v, float) or v == v and abs(v) != float("inf") else "nan"
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return "{" + ", ".join(f"{json.dumps(k)} = {value(x)}" for k, x in v.items()) + "}"
    return "\n".join(f"{k} = {value(v)}" for k, v in document.items()) + "\n"


@PROPERTY
@given(st.dictionaries(toml_keys, toml_values, max_size=4) | st.text(max_size=200) | st.binary(max_size=100))
def test_settings_file_is_loaded_or_rejected_with_a_clear_error(document: dict[str, Any] | str | bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "resonanz.toml"
        if isinstance(document, dict):
            path.write_text(write_toml(document))
        elif isinstance(document, str):
            path.write_text(document)
        else:
            path.write_bytes(document)
        try:
            loaded = load_settings(path)
        except (ValidationError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            assert str(exc)  # pydantic names the field; tomllib names line and column
            return
        assert isinstance(loaded, Settings)
        assert all(brand.name for brand in loaded.brands) or not loaded.brands


brand_fields = st.fixed_dictionaries({}, optional={
    "name": st.text(max_size=10) | st.integers() | st.none(), "kind": st.text(max_size=10),
    "aliases": st.lists(st.text(max_size=8) | st.integers(), max_size=3) | st.text(max_size=5),
    "handles": st.lists(st.text(max_size=8), max_size=3), "owner": st.text(max_size=5) | st.none(),
})


@PROPERTY
@given(st.lists(brand_fields, max_size=4))
def test_brand_list_validates_or_names_the_bad_field(brands: list[dict[str, Any]]) -> None:
    try:
        built = Settings(brands=brands)
    except ValidationError as exc:
        assert exc.errors() and all(error["loc"][0] == "brands" for error in exc.errors())
        return
    assert [b.name for b in built.brands] == [b["name"] for b in brands]


# --- CRM CSV ----------------------------------------------------------------------------------------

csv_cell = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)


def csv_mutations() -> st.SearchStrategy[str]:
    header, rows = CUSTOMERS[0], CUSTOMERS[1:]
    def edit(args: tuple[int, int, str]) -> str:
        row, column, cell = args
        cells = rows[row % len(rows)].split(",")
        cells[column % len(cells)] = cell.replace("\n", " ")
        changed = list(rows)
        changed[row % len(rows)] = ",".join(cells)
        return "\n".join([header, *changed]) + "\n"
    edits = st.tuples(st.integers(0, 100), st.integers(0, 20), csv_cell).map(edit)
    return edits | st.text(max_size=300) | st.integers(0, 2000).map(lambda n: "\n".join(CUSTOMERS)[:n])


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(csv_mutations())
def test_crm_import_loads_or_fails_cleanly_without_partial_rows(tmp_path: Path, text: str) -> None:
    csv = tmp_path / "customers.csv"
    csv.write_text(text, encoding="utf-8")
    with closing(open_warehouse(tmp_path / "crm.duckdb")) as con:
        before = con.execute("SELECT count(*) FROM customers").fetchone()[0]
        try:
            n = import_customers(con, csv, "fuzz")
        except (CrmImportError, pa.ArrowInvalid) as exc:  # a named column problem, or the cell Arrow could not read
            assert str(exc)
            assert con.execute("SELECT count(*) FROM customers").fetchone()[0] == before
            return
        assert n >= 0
        assert con.execute("SELECT count(*) FROM customers WHERE crm_source = 'fuzz'").fetchone()[0] >= min(n, 1) or n == 0


def test_blank_customer_id_is_a_named_error(tmp_path: Path) -> None:
    csv = tmp_path / "customers.csv"
    csv.write_text("\n".join([CUSTOMERS[0], "," + CUSTOMERS[1].split(",", 1)[1]]) + "\n")
    with closing(open_warehouse(tmp_path / "crm.duckdb")) as con, pytest.raises(CrmImportError):
        import_customers(con, csv, "fuzz")


# --- regressions for what the properties found or the fault suite fixed -------------------------------


def test_empty_feed_body_is_quarantined_not_an_attribute_error() -> None:
    page = parse_feed(b"", provenance(), Cursor("s", "f"))
    assert page.posts == [] and [q.reason for q in page.quarantined] == ["not a feed: no RSS/Atom root"]


def test_reddit_impossible_timestamps_are_quarantined() -> None:
    children = [{"kind": "t3", "data": {"name": "t3_a", "title": "far future", "created_utc": 1e300}},
                {"kind": "t3", "data": {"name": "t3_b", "title": "not a number", "created_utc": float("nan")}},
                {"kind": "t3", "data": {"name": "t3_c", "title": "fine", "created_utc": 1_700_000_000}}]
    page = parse_reddit_listing(json_dumps({"data": {"children": children}}), provenance(), Cursor("s", "r"))
    assert [p.post_id for p in page.posts] == ["t3_c"]
    assert [q.reason.split(":")[0] for q in page.quarantined] == ["created_utc is not a possible time"] * 2


def test_non_utf8_date_cell_is_a_named_error(tmp_path: Path) -> None:
    csv = tmp_path / "customers.csv"
    header, row = CUSTOMERS[0], CUSTOMERS[1].split(",")
    row[3] = "2011-01-18 10:01:00"
    body = (header + "\n" + ",".join(row) + "\n").encode().replace(b"2011-01-18 10:01:00", b"2011-01-18 \xff10:01:00")
    csv.write_bytes(body)
    with closing(open_warehouse(tmp_path / "crm.duckdb")) as con, pytest.raises(CrmImportError):
        import_customers(con, csv, "fuzz")


def test_feedparser_crash_on_odd_markup_is_quarantined() -> None:
    """Found by bench/fuzz_parsers.py: feedparser raises TypeError on a podlove chapter without `start`."""
    feed = (b'<?xml version="1.0" encoding="utf-8"?><rss version="2.0" xmlns:psc="http://podlove.org/simple-chapters">'
            b'<channel><title>t</title><item><title>a</title><psc:chapters><psc:chapter title="x"/></psc:chapters>'
            b'</item><item><title>b &amp; <broken</title></item></channel></rss>')
    page = parse_feed(feed, provenance(), Cursor("s", "f"))
    assert page.raw.body.startswith("<?xml")
    assert [q.reason.split(":")[0] for q in page.quarantined] in (["feed parser failed"], ["malformed feed"])


def test_opml_in_an_encoding_expat_cannot_read_is_a_named_error() -> None:
    """Found by bench/fuzz_parsers.py: UTF-7 (ValueError) and unknown encodings (LookupError) escaped read_opml."""
    for encoding in (b"UTF-7", b"UTF-4"):
        with pytest.raises(MalformedPayload, match="OPML file is not valid XML"):
            read_opml(b'<?xml version="1.0" encoding="' + encoding + b'"?><opml><body/></opml>', "https://x.example/l.opml")


def test_non_utf8_header_is_a_named_error(tmp_path: Path) -> None:
    csv = tmp_path / "customers.csv"
    csv.write_bytes(b"\x01\x00\x00\xff\xff\xff\n1,2\n")
    with closing(open_warehouse(tmp_path / "crm.duckdb")) as con, pytest.raises(CrmImportError):
        import_customers(con, csv, "fuzz")


def test_invalid_ipv6_links_do_not_break_a_feed() -> None:
    """Found by bench/fuzz_parsers.py: urllib raises ValueError on "http://[..." in a feed or entry link."""
    feed = (b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title><link>http://[oops</link>'
            b'<atom:link xmlns:atom="http://www.w3.org/2005/Atom" href="http://[bad" rel="self"/>'
            b'<item><title>a</title><link>http://[x/1</link><description>&lt;a href="http://[y"&gt;y&lt;/a&gt; '
            b'&lt;a href="https://ok.example/p"&gt;ok&lt;/a&gt;</description></item></channel></rss>')
    page = parse_feed(feed, provenance(), Cursor("s", "f"))
    assert [p.title for p in page.posts] == ["a"]
    assert read_opml(b'<opml><body><outline xmlUrl="http://[x/feed"/></body></opml>', "https://l.example/a.opml") == []


def test_header_only_export_imports_nothing(tmp_path: Path) -> None:
    csv = tmp_path / "customers.csv"
    csv.write_text(CUSTOMERS[0] + "\n")
    with closing(open_warehouse(tmp_path / "crm.duckdb")) as con:
        assert import_customers(con, csv, "fuzz") == 0
