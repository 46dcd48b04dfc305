"""Time the analyst side of the warehouse: views, export, snapshot, linking, customer value, erasure.

Posts are the real bundled samples (TWCS English, GermEval German) repeated `--posts` times in
total with new ids; annotations and brand mentions are derived the same way as in the tests
(language from the dataset, VADER sentiment, configured brand names). Linking pits `--accounts`
accounts against as many CRM customers whose identities share handles, e-mails or names with a
tenth of them. Prints figures and writes bench/results/warehouse_analyst.json.
Usage: python -m bench.warehouse_analyst [--posts 1000000] [--accounts 100000]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "warehouse"))

from bench.machine import machine_info  # noqa: E402
from warehouse.customer_value import compute_customer_value  # noqa: E402
from warehouse.db import open_warehouse  # noqa: E402
from warehouse.export import export_all, publish_snapshot  # noqa: E402
from warehouse.linking import link_accounts_probabilistic  # noqa: E402
from warehouse.privacy import erase_account  # noqa: E402
from warehouse.views import VIEW_NAMES  # noqa: E402
from warehouse_data import build_warehouse  # noqa: E402

RESULTS = Path(__file__).with_name("results") / "warehouse_analyst.json"


def timed(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    value = fn(*args, **kwargs)
    return value, time.perf_counter() - started


def scale_posts(con, target: int) -> int:  # type: ignore[no-untyped-def]
    """Repeat the sample posts (with their annotations and mentions) until `target` posts exist."""
    base = con.execute("SELECT count(*) FROM posts").fetchall()[0][0]
    copies = max(target // base - 1, 0)
    if copies:
        con.execute(f"CREATE TEMP TABLE k AS SELECT range AS k FROM range(1, {copies + 1})")
        con.execute("""INSERT INTO posts SELECT source, post_id || '_' || k, author_id, text, title,
                       created_at + k * INTERVAL 1 HOUR, url, lang_hint, parent_post_id, conversation_id, like_count,
                       repost_count, reply_count, quote_count, raw_id, loaded_at FROM posts, k""")
        con.execute("""INSERT INTO annotations SELECT source, post_id || '_' || k, task, label, score, model_name,
                       model_version, annotated_at FROM annotations, k""")
        con.execute("""INSERT INTO brand_mentions SELECT source, post_id || '_' || k, brand, brand_kind,
                       matched_text, start_char, sentiment FROM brand_mentions, k""")
        con.execute("DROP TABLE k")
    return con.execute("SELECT count(*) FROM posts").fetchall()[0][0]


def linking_population(con, n: int) -> None:  # type: ignore[no-untyped-def]
    """n accounts and n customers; every tenth customer is one of the account holders."""
    first = ["anna", "lukas", "emma", "jonas", "mia", "tom", "sophie", "paul", "lena", "max", "olivia", "jack"]
    last = ["schmidt", "mueller", "baker", "smith", "weber", "jones", "fischer", "taylor", "wagner", "brown"]
    now = datetime(2026, 11, 1, tzinfo=UTC)
    names = [f"{first[i % 12]} {last[(i // 12) % 10]} {i // 120}" for i in range(n)]
    con.execute("DELETE FROM account_customer_links")
    con.execute("DELETE FROM customer_identities")
    accounts = pa.table({
        "source": ["bench"] * n, "account_id": [f"b{i}" for i in range(n)],
        "handle": [f"h{i:07d}" for i in range(n)], "display_name": names,
        "description": [f"mail me: p{i}@example.org" if i % 3 == 0 else "hello" for i in range(n)],
        "location": ["Berlin" if i % 2 else "London" for i in range(n)],
        "loaded_at": [now] * n})
    con.register("_acc", accounts)
    con.execute("INSERT INTO accounts (source, account_id, handle, display_name, description, location, loaded_at) "
                "SELECT * FROM _acc")
    con.unregister("_acc")
    customers = pa.table({"customer_id": [f"bc{i}" for i in range(n)],
                          "country": ["Germany" if i % 2 else "United Kingdom" for i in range(n)],
                          "crm_source": ["bench"] * n, "loaded_at": [now] * n})
    con.register("_cus", customers)
    con.execute("INSERT INTO customers (customer_id, country, crm_source, loaded_at) SELECT * FROM _cus")
    con.unregister("_cus")
    ids = []
    for i in range(n):
        if i % 10 == 0:
            ids.append((f"bc{i}", "bench", f"h{i:07d}", names[i]))
        elif i % 10 == 3:
            ids.append((f"bc{i}", "email", f"p{i}@example.org", names[i]))
        else:
            ids.append((f"bc{i}", "bench", f"c{i:07d}", f"{first[(i + 5) % 12]} {last[i % 10]} x{i}"))
    table = pa.table({k: [r[j] for r in ids] for j, k in enumerate(("customer_id", "source", "handle", "display_name"))})
    con.register("_ids", table)
    con.execute("INSERT INTO customer_identities SELECT *, 'bench' FROM _ids")
    con.unregister("_ids")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--posts", type=int, default=1_000_000)
    parser.add_argument("--accounts", type=int, default=100_000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="resonanz-bench-"))
    results: dict[str, object] = {"machine": machine_info(), "posts": args.posts, "accounts": args.accounts}
    try:
        path, seconds = timed(build_warehouse, work / "w.duckdb")
        results["build_sample_warehouse_s"] = round(seconds, 2)
        con = open_warehouse(path)
        n_posts, seconds = timed(scale_posts, con, args.posts)
        results["posts_in_warehouse"] = n_posts
        print(f"{n_posts:,} posts in the warehouse ({seconds:.1f} s to scale up)")
        views = {}
        for view in VIEW_NAMES:
            rows, seconds = timed(lambda v=view: con.execute(
                f"CREATE OR REPLACE TEMP TABLE _m AS SELECT * FROM {v}").fetchall() and
                con.execute("SELECT count(*) FROM _m").fetchall()[0][0])
            views[view] = {"rows": rows, "ms": round(seconds * 1000, 1)}
            print(f"  {view:28s} {rows:>10,} rows {seconds * 1000:8.1f} ms")
        results["views_full_materialisation"] = views
        _, seconds = timed(export_all, con, work / "export")
        results["export_parquet_and_csv_s"] = round(seconds, 2)
        print(f"export (Parquet by day + CSV, all views): {seconds:.1f} s")
        _, seconds = timed(publish_snapshot, con, work / "snapshot.duckdb")
        results["publish_snapshot_s"] = round(seconds, 2)
        print(f"publish snapshot: {seconds:.1f} s ({(work / 'snapshot.duckdb').stat().st_size / 1e6:.0f} MB)")
        summary, seconds = timed(compute_customer_value, con)
        results["customer_value_s"] = round(seconds, 2)
        print(f"customer value (ABC, RFM, BG/NBD + Gamma-Gamma) for {summary.customers} customers: {seconds:.1f} s")
        report, seconds = timed(erase_account, con, "x", "115712")
        results["erase_account_s"] = round(seconds, 2)
        print(f"erase one account across {n_posts:,} posts: {seconds:.1f} s")
        linking_population(con, args.accounts)
        summary, seconds = timed(link_accounts_probabilistic, con)
        truth = con.execute(
            "SELECT count(*) FILTER (WHERE replace(account_id, 'b', '') = replace(customer_id, 'bc', '')), count(*) "
            "FROM account_customer_links WHERE source = 'bench' AND status = 'auto'").fetchall()[0]
        results["linking"] = {"accounts": args.accounts, "customers": args.accounts, "seconds": round(seconds, 2),
                              "pairs_scored": summary.pairs_scored, "auto": summary.auto, "review": summary.review,
                              "auto_correct": truth[0], "true_links": args.accounts // 10 * 2}
        print(f"linking {args.accounts:,} accounts x {args.accounts:,} customers: {seconds:.1f} s, "
              f"{summary.pairs_scored:,} pairs scored, {summary.auto} auto ({truth[0]} correct of "
              f"{args.accounts // 10 * 2} true), {summary.review} review")
        con.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
