"""Idempotent warehouse load of N posts with annotations, against a bare DuckDB upsert of the same rows.

Posts are the bundled real tweets replayed with new ids (text, authors and mentions kept), in
pages of 10,000 as a connector would yield them, each page carrying a few re-sighted posts
so that the in-batch de-duplication has work to do. Two numbers per table set:

- full: `warehouse.load.load_pages` (dataclasses → Arrow, in-batch de-duplication and merge,
  upserts of raw payloads, posts, accounts, interactions, cursor, all in one transaction per
  batch) and `warehouse.stages.save_enrichment` for the annotations;
- bare: the same final rows, already as Arrow tables, upserted with one
  `INSERT ... ON CONFLICT DO UPDATE` per table — the floor any loader has to pay.

Then the full load runs again and must add 0 rows. Usage: python -m bench.warehouse [--posts 1000000]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa

from bench.machine import machine_info
from connectors.records import Cursor, Interaction, Page, Post, Provenance, RawPayload
from connectors.x import parse_x_page
from nlp.records import Annotation
from resonanz.settings import SAMPLE_DIR
from warehouse.arrow import records_to_arrow
from warehouse.db import open_warehouse, table_counts
from warehouse.load import ACCOUNT_SCHEMA, INTERACTION_SCHEMA, POST_SCHEMA, load_pages, upsert
from warehouse.stages import ANNOTATION_SCHEMA, save_enrichment

RESULTS = Path(__file__).resolve().parent / "results" / "warehouse.json"
PAGE_SIZE = 10_000
T0 = datetime(2017, 10, 1, tzinfo=UTC)


def real_sample() -> tuple[list[Post], list[Interaction]]:
    posts: list[Post] = []
    edges: list[Interaction] = []
    prov = Provenance("x", "bench", T0, "bench")
    for folder in ("x_twcs_en", "x_germeval_db_de"):
        for path in sorted((SAMPLE_DIR / folder).glob("page-*.json")):
            page = parse_x_page(path.read_text(encoding="utf-8"), prov, Cursor("bench", folder))
            posts.extend(page.posts)
            edges.extend(page.interactions)
    return posts, edges


def synthetic_pages(n_posts: int) -> list[Page]:
    """Replay the real sample with new ids until `n_posts` distinct posts exist."""
    sample, sample_edges = real_sample()
    edges_by_post: dict[str, list[Interaction]] = {}
    for edge in sample_edges:
        edges_by_post.setdefault(edge.post_id, []).append(edge)
    pages: list[Page] = []
    posts: list[Post] = []
    edges: list[Interaction] = []
    from connectors.records import Account  # noqa: PLC0415

    accounts: dict[str, Account] = {}
    for i in range(n_posts):
        base = sample[i % len(sample)]
        copy = i // len(sample)
        post_id = f"{base.post_id}-{copy}"
        author = f"{base.author_id}-{copy % 50}"
        created = T0 + timedelta(seconds=i * 5)
        posts.append(Post("x", post_id, author, base.text, created, lang_hint=None))
        accounts.setdefault(author, Account("x", author, author))
        for edge in edges_by_post.get(base.post_id, ()):
            dst = f"{edge.dst_account_id}-{copy % 50}"
            edges.append(Interaction("x", edge.kind, author, dst, post_id, None, created))
        if len(posts) == PAGE_SIZE or i == n_posts - 1:
            # A connector sees some posts twice (edits, overlapping windows): re-sight 1%.
            posts.extend(posts[: len(posts) // 100])
            raw = RawPayload(Provenance("x", "bench", T0, "bench"), f"page {len(pages)}")
            pages.append(Page(raw, Cursor("bench", "replay", {"page": len(pages)}), posts, list(accounts.values()),
                              edges))
            posts, edges, accounts = [], [], {}
    return pages


def annotations_for(pages: list[Page]) -> list[list[Annotation]]:
    labels = ("negative", "neutral", "positive")
    return [
        [a for j, p in enumerate(page.posts)
         for a in (Annotation("x", p.post_id, "language", "en", 0.99, "bench-lang", "1"),
                   Annotation("x", p.post_id, "sentiment", labels[j % 3], 0.8, "bench-sent", "1"))]
        for page in pages
    ]


def full_load(db: Path, pages: list[Page], annotations: list[list[Annotation]]) -> float:
    con = open_warehouse(db)
    started = time.perf_counter()
    for page, notes in zip(pages, annotations):
        load_pages(con, [page])
        save_enrichment(con, [(p.source, p.post_id) for p in page.posts], notes, [], [])
    elapsed = time.perf_counter() - started
    con.close()
    return elapsed


def bare_tables(db: Path) -> dict[str, pa.Table]:
    """The final rows the full load stored, as Arrow tables (so both paths write the same rows)."""
    con = open_warehouse(db, read_only=True)
    tables = {
        "posts": con.execute(f"SELECT {', '.join(POST_SCHEMA.names)} FROM posts").to_arrow_table(),
        "accounts": con.execute(f"SELECT {', '.join(ACCOUNT_SCHEMA.names)} FROM accounts").to_arrow_table(),
        "interactions": con.execute(f"SELECT {', '.join(INTERACTION_SCHEMA.names)} FROM interactions").to_arrow_table(),
        "annotations": con.execute(f"SELECT {', '.join(ANNOTATION_SCHEMA.names)} FROM annotations").to_arrow_table(),
    }
    con.close()
    return tables


def bare_load(db: Path, tables: dict[str, pa.Table]) -> float:
    keys = {"posts": ("source", "post_id"), "accounts": ("source", "account_id"),
            "interactions": ("source", "kind", "src_account_id", "dst_account_id", "post_id"),
            "annotations": ("source", "post_id", "task")}
    con = open_warehouse(db)
    started = time.perf_counter()
    for name, table in tables.items():
        for batch in table.to_batches(max_chunksize=PAGE_SIZE):
            upsert(con, name, pa.Table.from_batches([batch]), keys[name])
    elapsed = time.perf_counter() - started
    con.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--posts", type=int, default=1_000_000)
    args = parser.parse_args()
    started = time.perf_counter()
    pages = synthetic_pages(args.posts)
    annotations = annotations_for(pages)
    prepare = time.perf_counter() - started
    rows_offered = sum(len(p.posts) for p in pages)
    with tempfile.TemporaryDirectory() as tmp:
        full_db, bare_db = Path(tmp) / "full.duckdb", Path(tmp) / "bare.duckdb"
        full_s = full_load(full_db, pages, annotations)
        with open_warehouse(full_db, read_only=True) as con:
            first = table_counts(con, ("posts", "accounts", "interactions", "annotations", "raw_payloads"))
        again_s = full_load(full_db, pages, annotations)
        with open_warehouse(full_db, read_only=True) as con:
            second = table_counts(con, ("posts", "accounts", "interactions", "annotations", "raw_payloads"))
        tables = bare_tables(full_db)
        bare_s = bare_load(bare_db, tables)
    stored_rows = sum(first[t] for t in ("posts", "accounts", "interactions", "annotations"))
    result = {
        "machine": machine_info(),
        "posts": args.posts,
        "post_rows_offered_incl_resightings": rows_offered,
        "prepare_records_seconds": round(prepare, 2),
        "rows_stored": first,
        "full_load_seconds": round(full_s, 2),
        "full_rows_per_second": round(stored_rows / full_s),
        "reload_seconds": round(again_s, 2),
        "reload_added_rows": {t: second[t] - first[t] for t in first},
        "bare_arrow_upsert_seconds": round(bare_s, 2),
        "full_vs_bare": round(full_s / bare_s, 2),
    }
    print(json.dumps(result, indent=2))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
