"""Measure parse + normalise speed (records/s) of the Mastodon, Bluesky, YouTube, MediaWiki and import parsers.

Run: `.venv/bin/python -m bench.connectors_more_speed [--repeat 5]`. No network: the live
connectors' parsers are timed on the test fixtures' response bodies (each parsed `--copies`
times), the importers on files built in a temporary folder from the whole bundled X samples
(2,003 TWCS tweets as twarc2 JSONL, 1,168 GermEval tweets as a 4CAT CSV). Prints a table and
writes bench/results/connectors_more.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from bench.machine import machine_info
from connectors.bluesky import parse_bluesky_page
from connectors.importers import Twarc2Importer, fourcat_importer
from connectors.mastodon import parse_mastodon_page
from connectors.mediawiki import parse_recent_changes
from connectors.records import Cursor, Page, Provenance
from connectors.youtube import parse_comment_threads
from resonanz.settings import SAMPLE_DIR

ROOT = Path(__file__).parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
RESULTS = Path(__file__).parent / "results" / "connectors_more.json"
PROVENANCE = Provenance("bench", "bench", datetime.now(timezone.utc), "bench")
CURSOR = Cursor("bench", "bench")


def _mastodon_body(name: str) -> str:
    return json.dumps(json.loads((FIXTURES / "mastodon" / f"{name}.json").read_text(encoding="utf-8"))["body"])


def parser_cases() -> dict[str, Callable[[], list[Page]]]:
    """Parsers of the live connectors, each over its fixture bodies."""
    masto = [_mastodon_body("test_public_tl__02"), _mastodon_body("test_hashtag_tl__02")]
    bsky = [(FIXTURES / "bluesky" / f"{n}.json").read_text(encoding="utf-8")
            for n in ("searchPosts_page1", "searchPosts_page2", "getAuthorFeed_pendlerin", "getPostThread_delay")]
    yt = [(FIXTURES / "youtube" / f"{n}.json").read_text(encoding="utf-8")
          for n in ("comment_threads_by_video_paged_1", "comment_thread_api_response", "comment_threads_by_channel")]
    wiki = [(FIXTURES / "mediawiki" / f"{n}.json").read_text(encoding="utf-8") for n in ("recentchanges_page1", "recentchanges_page2")]
    return {
        "mastodon": lambda: [parse_mastodon_page(b, "m.example", PROVENANCE, CURSOR) for b in masto],
        "bluesky": lambda: [parse_bluesky_page(b, PROVENANCE, CURSOR) for b in bsky],
        "youtube": lambda: [parse_comment_threads(b, PROVENANCE, CURSOR) for b in yt],
        "mediawiki": lambda: [parse_recent_changes(b, "w.example", PROVENANCE, CURSOR) for b in wiki],
    }


def build_import_files(folder: Path) -> dict[str, Path]:
    """Write the whole bundled samples as a twarc2 JSONL file and a 4CAT CSV."""
    twarc = folder / "twcs.jsonl"
    with twarc.open("w", encoding="utf-8") as handle:
        for page in sorted((SAMPLE_DIR / "x_twcs_en").glob("page-*.json")):
            handle.write(json.dumps(json.loads(page.read_text(encoding="utf-8"))) + "\n")
    fourcat = folder / "germeval.csv"
    with fourcat.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "thread_id", "unix_timestamp", "body", "author", "author_id", "mentions"])
        for page in sorted((SAMPLE_DIR / "x_germeval_db_de").glob("page-*.json")):
            for tweet in json.loads(page.read_text(encoding="utf-8"))["data"]:
                created = datetime.fromisoformat(tweet["created_at"].replace("Z", "+00:00"))
                mentions = ",".join(m["username"] for m in tweet.get("entities", {}).get("mentions", []))
                writer.writerow([tweet["id"], tweet["id"], int(created.timestamp()), tweet["text"], tweet["author_id"],
                                 tweet["author_id"], mentions])
    return {"import_twarc2": twarc, "import_4cat": fourcat}


def measure(name: str, run: Callable[[], list[Page]], repeat: int, copies: int) -> dict[str, float | int | str]:
    """Run `copies` times per repeat; keep the best repeat."""
    best, pages = float("inf"), []
    for _ in range(repeat):
        started = time.perf_counter()
        pages = [page for _ in range(copies) for page in run()]
        best = min(best, time.perf_counter() - started)
    posts = sum(len(p.posts) for p in pages)
    records = posts + sum(len(p.accounts) + len(p.interactions) for p in pages)
    return {"source": name, "pages": len(pages), "posts": posts, "records": records, "seconds": round(best, 4),
            "records_per_s": round(records / best), "posts_per_s": round(posts / best)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--copies", type=int, default=200, help="parses of each fixture body per repeat")
    args = parser.parse_args()
    rows = [measure(name, run, args.repeat, args.copies) for name, run in parser_cases().items()]
    with tempfile.TemporaryDirectory() as tmp:
        files = build_import_files(Path(tmp))
        rows.append(measure("import_twarc2", lambda: list(Twarc2Importer(files["import_twarc2"], "b", "b").fetch(None)), args.repeat, 1))
        rows.append(measure("import_4cat", lambda: list(fourcat_importer(files["import_4cat"], "b", "b").fetch(None)), args.repeat, 1))
    print(f"{'source':<15}{'pages':>7}{'posts':>8}{'records':>9}{'seconds':>9}{'records/s':>11}{'posts/s':>9}")
    for row in rows:
        print(f"{row['source']:<15}{row['pages']:>7}{row['posts']:>8}{row['records']:>9}{row['seconds']:>9}"
              f"{row['records_per_s']:>11}{row['posts_per_s']:>9}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "benchmark": "parse+normalise of the Mastodon/Bluesky/YouTube/MediaWiki parsers and the importers (best of repeats)",
        "repeat": args.repeat, "copies": args.copies, "machine": machine_info(),
        "note": "records = posts + accounts + interactions; parsers timed on fixture bodies, importers on the whole bundled X samples",
        "results": rows,
    }, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
