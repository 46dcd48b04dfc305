"""Coverage-guided fuzzing (atheris/libFuzzer) of every parser that reads outside input.

    .venv/bin/python -m bench.fuzz_parsers --seconds 180            # every parser, 3 min each
    .venv/bin/python -m bench.fuzz_parsers --parser feed --seconds 60

Each parser runs in its own process, seeded with the real recorded payloads; an exception other than
the parser's named, expected ones is a finding (libFuzzer stops and saves the input as crash-*).
Prints executions and findings per parser and writes bench/results/fuzz_parsers.json.
Needs atheris (`pip install atheris`); without it, says so and exits.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
SAMPLE = ROOT / "resonanz" / "sample"
SEEDS = {
    "x": [*sorted((SAMPLE / "x_twcs_en").glob("page-000[1-3].json")), FIXTURES / "x" / "search_recent_tweets.json",
          FIXTURES / "bad_input" / "x" / "page-0001.json"],
    "reddit": sorted((FIXTURES / "reddit").glob("*.json")),
    "feed": [*sorted((SAMPLE / "feeds").glob("*.xml")), FIXTURES / "rss" / "json_feed.json", FIXTURES / "bad_input" / "feeds" / "broken.xml"],
    "opml": [SAMPLE / "feeds" / "feeds.opml"],
    "settings": [ROOT / "resonanz" / "defaults.toml", ROOT / "resonanz.example.toml"],
    "crm": [SAMPLE / "crm" / "customers.csv"],
}
MAX_SEED_BYTES = 64_000


def target(parser: str):  # noqa: ANN201 (returns the libFuzzer callback)
    """Import the parser under atheris instrumentation and return the one-input test function."""
    import atheris

    with atheris.instrument_imports(include=["connectors", "resonanz", "warehouse"]):
        from datetime import datetime, timezone

        from connectors.base import MalformedPayload
        from connectors.records import Cursor, Provenance
        from connectors.reddit import parse_reddit_listing
        from connectors.rss import parse_feed, read_opml
        from connectors.x import parse_x_page
        from resonanz.settings import Settings
        from warehouse.crm import CrmImportError, import_customers

    provenance = Provenance("fuzz", "fuzz", datetime(2026, 11, 24, tzinfo=timezone.utc), "fuzz")
    cursor = Cursor("fuzz", "fuzz")

    def text(data: bytes) -> str:
        return data.decode("utf-8", errors="replace")

    if parser == "x":
        return lambda data: parse_x_page(text(data), provenance, cursor)
    if parser == "reddit":
        return lambda data: parse_reddit_listing(text(data), provenance, cursor)
    if parser == "feed":
        return lambda data: parse_feed(data, provenance, cursor)
    if parser == "opml":
        def opml(data: bytes) -> None:
            try:
                read_opml(data, "https://lists.example/list.opml")
            except MalformedPayload:
                pass
        return opml
    if parser == "settings":
        import tomllib

        from pydantic import ValidationError

        def settings(data: bytes) -> None:
            try:
                Settings.model_validate(tomllib.loads(data.decode("utf-8")))
            except (UnicodeDecodeError, tomllib.TOMLDecodeError, ValidationError):
                pass
        return settings
    if parser == "crm":
        import duckdb
        import pyarrow as pa

        from warehouse.db import open_warehouse

        folder = Path(tempfile.mkdtemp(prefix="fuzz-crm-"))
        con = open_warehouse(folder / "crm.duckdb")
        csv = folder / "customers.csv"

        def crm(data: bytes) -> None:
            csv.write_bytes(data)
            try:
                import_customers(con, csv, "fuzz")
            except (CrmImportError, pa.ArrowInvalid):
                pass
            except pa.ArrowNotImplementedError as exc:  # known: non-UTF-8 date cells, header-only files
                if "binary to timestamp" not in str(exc) and "array_take" not in str(exc):
                    raise
            except UnicodeDecodeError:  # known: a header that is not UTF-8 (see tests/faults/test_bad_input.py)
                pass
            except duckdb.ConstraintException as exc:  # known: blank CustomerID (see tests/faults)
                if "customer_id" not in str(exc):
                    raise
        return crm
    raise SystemExit(f"unknown parser {parser!r}; choose from {', '.join(SEEDS)}")


def child(parser: str, corpus: str, seconds: int) -> None:
    import atheris

    test = target(parser)
    atheris.Setup([sys.argv[0], corpus, f"-max_total_time={seconds}", "-rss_limit_mb=2048", "-timeout=20",
                   f"-artifact_prefix={ROOT / 'bench' / 'results' / 'fuzz-artifacts'}/{parser}-"], test)
    atheris.Fuzz()


def run(parser: str, seconds: int) -> dict[str, object]:
    corpus = Path(tempfile.mkdtemp(prefix=f"fuzz-{parser}-"))
    for seed in SEEDS[parser]:
        if seed.exists():
            (corpus / seed.name).write_bytes(seed.read_bytes()[:MAX_SEED_BYTES])
    (ROOT / "bench" / "results" / "fuzz-artifacts").mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    done = subprocess.run([sys.executable, __file__, "--child", parser, "--corpus", str(corpus), "--seconds", str(seconds)],
                          capture_output=True, text=True, cwd=ROOT)
    log = done.stderr
    runs = re.findall(r"Done (\d+) runs in (\d+) second", log)
    last = re.findall(r"#(\d+)\s+(?:pulse|NEW|REDUCE|INITED|DONE)\s+cov: (\d+) ft: (\d+)", log)
    crashed = "==ERROR" in log or "Uncaught Python exception" in log or done.returncode not in (0,)
    finding = None
    if crashed:
        tail = log[log.find("Uncaught Python exception"):] if "Uncaught Python exception" in log else log[-3000:]
        finding = tail[:3000]
    shutil.rmtree(corpus, ignore_errors=True)
    return {
        "parser": parser,
        "seconds": round(time.monotonic() - started, 1),
        "executions": int(runs[-1][0]) if runs else (int(last[-1][0]) if last else 0),
        "coverage_edges": int(last[-1][1]) if last else None,
        "exit_code": done.returncode,
        "finding": finding,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parser", choices=sorted(SEEDS), action="append")
    parser.add_argument("--seconds", type=int, default=180)
    parser.add_argument("--child")
    parser.add_argument("--corpus")
    args = parser.parse_args()
    try:
        import atheris  # noqa: F401
    except ImportError:
        print("atheris is not installed: .venv/bin/pip install atheris (needs a Linux wheel or clang); nothing fuzzed")
        return
    if args.child:
        child(args.child, args.corpus, args.seconds)
        return
    results = []
    for name in args.parser or list(SEEDS):
        result = run(name, args.seconds)
        results.append(result)
        status = "no finding" if not result["finding"] else "FINDING (see bench/results/fuzz-artifacts)"
        print(f"{name:9s} {result['executions']:>9,} executions in {result['seconds']:>6.1f}s  "
              f"edges={result['coverage_edges']}  {status}", flush=True)
    out = ROOT / "bench" / "results" / "fuzz_parsers.json"
    previous = json.loads(out.read_text()) if out.exists() else {}
    previous.update({r["parser"]: r for r in results})
    out.write_text(json.dumps(previous, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
