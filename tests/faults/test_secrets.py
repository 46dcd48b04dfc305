"""Secrets never leak: a planted token is absent from logs, reprs and every table; SQL never splices values; file modes."""

from __future__ import annotations

import ast
import importlib.util
import io
import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import duckdb
import pytest

from connectors.base import Forbidden
from connectors.registry import build_connector
from resonanz.settings import SAMPLE_DIR, load_settings

from faultkit import FIXTURES, LocalServer, Reply, collect, warehouse
from faultkit import allow_local_servers, local_server  # noqa: F401 (pytest fixtures)

ROOT = Path(__file__).resolve().parents[2]
SECRETS = {
    "RESONANZ_X_BEARER_TOKEN": "AAAAplantedXbearer7f3c9d2e",
    "RESONANZ_REDDIT_CLIENT_ID": "plantedRedditId5b1a",
    "RESONANZ_REDDIT_CLIENT_SECRET": "plantedRedditSecret8e4f",
    "RESONANZ_SMTP__PASSWORD": "plantedSmtpPassword2c6d",
}
X_PAGE = (FIXTURES / "x" / "public_api_sample_v2.json").read_text()
SEARCH = "/2/tweets/search/recent"  # tweepy asks api.twitter.com; `api_base` sends it here


@pytest.fixture
def planted(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    yield list(SECRETS.values())


@pytest.fixture
def every_log_line() -> Iterator[io.StringIO]:
    """Capture every log record of every logger (root, prefect, httpx, urllib3, tweepy) at DEBUG."""
    sink = io.StringIO()
    handler = logging.StreamHandler(sink)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s %(args)s"))
    handler.setLevel(logging.DEBUG)
    loggers = [logging.getLogger(), *(logging.getLogger(n) for n in ("prefect", "httpx", "httpcore", "urllib3", "tweepy", "duckdb"))]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.DEBUG)
    yield sink
    for lg, level in zip(loggers, levels):
        lg.removeHandler(handler)
        lg.setLevel(level)


def config(tmp_path: Path, server: LocalServer) -> Path:
    feed = tmp_path / "feed.xml"
    shutil.copy(SAMPLE_DIR / "feeds" / "CRE.xml", feed)
    path = tmp_path / "resonanz.toml"
    path.write_text(f"""
duckdb_path = "{tmp_path / 'w.duckdb'}"
[smtp]
host = "127.0.0.1"
username = "alerts"
[[sources]]
name = "reddit_de"
connector = "reddit"
stream = "r/de"
options = {{ token_url = "{server.url}/api/v1/access_token", api_base = "{server.url}" }}
[[sources]]
name = "x_live"
connector = "x"
stream = "Deutsche Bahn"
options = {{ api_base = "{server.url}" }}
[[sources]]
name = "feed_local"
connector = "rss"
stream = "{server.url}/feed.xml"
""")
    return path


def serve(server: LocalServer) -> None:
    json_type = {"Content-Type": "application/json"}
    server.route("/api/v1/access_token", Reply(200, b'{"access_token": "plantedAccessTokenFromReddit", "expires_in": 3600}', json_type))
    server.route("/r/de/new?limit=100&raw_json=1", Reply(200, (FIXTURES / "reddit" / "all_search_last_page.json").read_bytes(), json_type))
    server.route("/feed.xml", Reply(200, (SAMPLE_DIR / "feeds" / "CRE.xml").read_bytes()))
    server.route(SEARCH, Reply(200, X_PAGE.encode(), json_type), Reply(401, b'{"title": "Unauthorized", "detail": "Unauthorized"}', json_type))


def leaks(con: duckdb.DuckDBPyConnection, needles: list[str]) -> list[str]:
    """Every (table, needle) where a needle appears in any column of any row, compared as text."""
    found = []
    tables = [r[0] for r in con.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'").fetchall()]
    assert {"posts", "raw_payloads", "cursors", "quarantine"} <= set(tables)
    for table in tables:
        text = json.dumps(con.execute(f'SELECT * FROM "{table}"').fetchall(), default=str)  # table names from the catalog
        found += [f"{table}: {needle}" for needle in needles if needle in text]
    return found


def test_planted_secrets_reach_no_log_no_repr_and_no_table(planted: list[str], every_log_line: io.StringIO,
                                                           local_server: LocalServer, tmp_path: Path,
                                                           capfd: pytest.CaptureFixture[str]) -> None:
    serve(local_server)
    settings = load_settings(config(tmp_path, local_server))
    assert settings.x_bearer_token and settings.x_bearer_token.get_secret_value() == SECRETS["RESONANZ_X_BEARER_TOKEN"]
    errors = []
    with warehouse(settings.duckdb_path) as con:
        for spec in settings.sources:
            connector = build_connector(spec, settings)
            result = collect(connector, con, spec.name, spec.stream)
            assert result.pages >= 1, spec.name
            logging.getLogger("resonanz.test").info("collected %s: %s %r", spec.name, result, vars(connector).get("stats"))
        # A rejected token must not echo into the error either.
        failed = collect(build_connector(settings.source("x_live"), settings), con, "x_live", "Deutsche Bahn")
        assert isinstance(failed.error, Forbidden)
        errors.append(str(failed.error))
        assert leaks(con, planted + ["plantedAccessTokenFromReddit"]) == []
    texts = [repr(settings), str(settings), settings.model_dump_json(), json.dumps(settings.model_dump(), default=str), *errors]
    captured = capfd.readouterr()
    logs = every_log_line.getvalue()
    assert "api.twitter.com" in logs and "127.0.0.1" in logs  # the capture really saw the HTTP traffic
    for needle in planted:
        assert all(needle not in text for text in texts), "a secret is printed by the settings or an error"
        assert needle not in logs and needle not in captured.out and needle not in captured.err
    # The secrets really were used on the wire (else this test proves nothing).
    x_calls = [r for r in local_server.requests if r.path.startswith(SEARCH)]
    assert x_calls[0].headers["authorization"] == f"Bearer {SECRETS['RESONANZ_X_BEARER_TOKEN']}"
    assert local_server.requests[0].headers["authorization"].startswith("Basic ")
    # And the file bytes themselves (DuckDB may compress strings; this catches the plain ones and the WAL).
    for file in settings.duckdb_path.parent.glob("w.duckdb*"):
        data = file.read_bytes()
        assert all(needle.encode() not in data for needle in planted)


def test_collect_flow_under_prefect_leaks_nothing(planted: list[str], every_log_line: io.StringIO, prefect_harness: None,
                                                  local_server: LocalServer, tmp_path: Path,
                                                  capfd: pytest.CaptureFixture[str]) -> None:
    from flows.scheduled import collect_flow

    serve(local_server)
    path = config(tmp_path, local_server)
    results = collect_flow(config_file=str(path), sources=["reddit_de", "feed_local"])
    assert results["reddit_de"]["pages"] >= 1 and results["feed_local"]["pages"] == 1
    logs = every_log_line.getvalue() + "\n".join(capfd.readouterr())
    assert "collect" in logs
    with closing(duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True)) as con:
        assert leaks(con, planted + ["plantedAccessTokenFromReddit"]) == []
    assert all(needle not in logs for needle in planted)


# --- SQL is built from code, never from values -------------------------------------------------------------

# Every f-string interpolation into SQL in the product, reviewed: all are identifiers from code or the
# catalog (tables, columns, views), SQL constants, or a path escaped by export._sql_path. Values are bound
# with `?`. A new interpolation fails this test until someone reviews it and adds it here.
REVIEWED_SQL_INTERPOLATIONS = {
    ("act/alerts.py", "BRAND_FACTS_SQL"), ("act/alerts.py", "POST_FACTS_SQL"),
    ("act/alerts.py", "POST_FACTS_SQL.replace('WHERE p.created_at BETWEEN ? AND ?', 'WHERE p.created_at <= ?')"),
    ("act/report.py", "BRAND_FACTS_SQL"), ("act/report.py", "POST_FACTS_SQL"),
    ("warehouse/db.py", "t"),  # table_counts: table names from the schema module
    ("warehouse/export.py", "_sql_path(csv_dir / f'{name}.csv')"), ("warehouse/export.py", "_sql_path(parquet_dir / f'{name}.parquet')"),
    ("warehouse/export.py", "_sql_path(parquet_dir / name)"), ("warehouse/export.py", "_sql_path(tmp)"),
    ("warehouse/export.py", "database"),  # current_database(): derived from the file name
    ("warehouse/export.py", "query"),  # export_queries(): SQL constants and view names
    ("warehouse/load.py", "col_list"), ("warehouse/load.py", "conflict"), ("warehouse/load.py", "table"), ("warehouse/load.py", "view"),
    ("warehouse/privacy.py", "', '.join(keys)"), ("warehouse/privacy.py", "column"), ("warehouse/privacy.py", "on"),
    ("warehouse/privacy.py", "table"),  # catalog identifiers
    ("warehouse/privacy.py", "<concatenation> sql + ' RETURNING 1'"),  # a constant suffix; values bound as params
    ("warehouse/stages.py", "table"),
    ("warehouse/graph_store.py", "table"),  # keys of a dict literal of result tables
    ("act/facts.py", "table"),  # has_rows(): literal table names, and only after an existence check bound with ?
    ("act/report.py", "_CUSTOMER_POSTS_SQL"),  # a SQL constant
    ("warehouse/graph_store.py", "columns"), ("warehouse/graph_store.py", "view"),  # batch columns from a code schema; a fixed view name
    # lake.py: paths quoted by _sql_text (quotes doubled); table names, queries, partition and order
    # columns and hive types come from the LAKE_TABLES constants in code
    ("warehouse/lake.py", "_sql_text(lake_glob(lake_dir, table.name))"), ("warehouse/lake.py", "_sql_text(path)"),
    ("warehouse/lake.py", "_sql_text(staging)"), ("warehouse/lake.py", "partition_list"), ("warehouse/lake.py", "query"),
    ("warehouse/lake.py", "table.name"), ("warehouse/lake.py", "table.order_by"), ("warehouse/lake.py", "types"),
}


def sql_interpolations() -> set[tuple[str, str]]:
    """(file, expression) for every f-string, concatenation or .format() passed as SQL to execute/sql/query."""
    found = set()
    for room in ("connectors", "nlp", "graph", "warehouse", "act", "flows", "resonanz"):
        for path in sorted((ROOT / room).rglob("*.py")):
            name = str(path.relative_to(ROOT))
            for node in ast.walk(ast.parse(path.read_text())):
                if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                        and node.func.attr in ("execute", "executemany", "sql", "query") and node.args):
                    continue
                sql = node.args[0]
                if isinstance(sql, ast.JoinedStr):
                    found |= {(name, ast.unparse(v.value)) for v in sql.values if isinstance(v, ast.FormattedValue)}
                elif isinstance(sql, ast.BinOp):
                    found.add((name, "<concatenation> " + ast.unparse(sql)))
                elif isinstance(sql, ast.Call) and isinstance(sql.func, ast.Attribute) and sql.func.attr == "format":
                    found.add((name, "<format> " + ast.unparse(sql)))
    return found


def test_no_unreviewed_values_are_spliced_into_sql() -> None:
    new = sql_interpolations() - REVIEWED_SQL_INTERPOLATIONS
    assert not new, f"review these SQL interpolations (bind values with ?): {sorted(new)}"


def test_a_hostile_value_is_stored_as_data(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from connectors.records import Cursor, Page, Post, Provenance, RawPayload
    from warehouse.load import load_cursor, load_pages

    evil = "x'); DROP TABLE posts; --"
    raw = RawPayload(Provenance(evil, evil, datetime.now(UTC), evil), evil)
    page = Page(raw=raw, cursor=Cursor(evil, evil, {evil: evil}))
    page.posts.append(Post(evil, evil, evil, evil, None, url=evil, raw_id=raw.raw_id))
    with warehouse(tmp_path / "w.duckdb") as con:
        load_pages(con, [page])
        assert con.execute("SELECT post_id, text FROM posts").fetchall() == [(evil, evil)]
        assert load_cursor(con, evil, evil).state == {evil: evil}


# --- dependencies ------------------------------------------------------------------------------------------------


def test_pip_audit_reports_no_known_vulnerabilities() -> None:
    """Needs pip-audit and the network (it asks the PyPI/OSV advisory databases): run with RESONANZ_AUDIT=1."""
    if os.environ.get("RESONANZ_AUDIT") != "1":
        pytest.skip("pip-audit needs network access to the advisory database; run with RESONANZ_AUDIT=1 (CI with network)")
    if importlib.util.find_spec("pip_audit") is None:
        pytest.skip("pip-audit is not installed: pip install pip-audit")
    done = subprocess.run([sys.executable, "-m", "pip_audit", "--progress-spinner", "off", "--skip-editable"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
