"""A full ranking of real GermEval interactions stored, re-stored idempotently and read back."""

from __future__ import annotations

import csv
import json
from datetime import datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from graph.ranking import rank_all
from resonanz.settings import GraphSettings
from warehouse.db import open_warehouse, table_counts
from warehouse.graph_store import TABLES, brand_posts, save_ranking, score_history

FIXTURES = Path(__file__).parents[1] / "fixtures" / "graph"


def germeval() -> tuple[pa.Table, pa.Table, pa.Table]:
    with open(FIXTURES / "germeval_db_edges.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    interactions = pa.table({
        "source": ["germeval"] * len(rows),
        "kind": ["reply" if r["type"] == "reply_mention" else "mention" for r in rows],
        "src_account_id": [r["src_author"] for r in rows],
        "dst_account_id": [r["dst_author"] for r in rows],
        "post_id": [r["post_id"] for r in rows],
        "target_post_id": pa.nulls(len(rows), pa.string()),
        "created_at": pa.array([datetime.fromisoformat(r["created_at"].replace("Z", "+00:00")) for r in rows],
                               pa.timestamp("us", tz="UTC")),
    })
    with open(FIXTURES / "germeval_db_post_labels.csv", newline="") as handle:
        labels = list(csv.DictReader(handle))
    signals = pa.table({
        "source": ["germeval"] * len(labels), "post_id": [r["post_id"] for r in labels],
        "author_id": [r["author_handle"] for r in labels], "brand_related": [r["relevance"] == "true" for r in labels],
        "sentiment": [r["sentiment"] or None for r in labels],
    })
    related = [r["post_id"] for r in labels if r["relevance"] == "true"]
    brands = pa.table({"source": ["germeval"] * len(related), "post_id": related, "brand": ["Deutsche Bahn"] * len(related)})
    return interactions, signals, brands


@pytest.fixture
def con(tmp_path):
    connection = open_warehouse(tmp_path / "w.duckdb")
    yield connection
    connection.close()


def test_save_ranking_is_idempotent_per_as_of_and_readable(con):
    interactions, signals, brands = germeval()
    result = rank_all(interactions, GraphSettings(), post_signals=signals, brand_posts=brands)
    first = save_ranking(con, result, "run-1")
    tables = ("influence_scores", *TABLES)
    counts = table_counts(con, tables)
    assert counts["influence_scores"] == len(result.scores) and counts["communities"] == len(result.communities) > 0
    assert counts["community_members"] == len(result.members) and counts["brand_influence"] == len(result.brands) > 0
    assert counts["influence_examples"] == sum(len(v) for v in result.examples.values()) > 0
    assert first["communities"] == counts["communities"]
    save_ranking(con, result, "run-2")  # the same data window again: rows replaced, none added
    assert table_counts(con, tables) == counts
    leaders, brand_json, run_id = con.execute(
        "SELECT leaders, brands, run_id FROM communities ORDER BY influence DESC LIMIT 1").fetchone()
    assert leaders[0] == "germeval/DB_Bahn" and "Deutsche Bahn" in json.loads(brand_json) and run_id == "run-2"
    assert con.execute("SELECT post_id FROM influence_examples WHERE account_id = 'DB_Bahn' AND position = 1").fetchone()
    assert brand_posts(con).num_rows == 0  # no brand_mentions were loaded in this file

    # A later window adds a time-series point; the stored history feeds the rising detector.
    later = rank_all(interactions, GraphSettings(), post_signals=signals, brand_posts=brands,
                     as_of=result.scores[0].as_of + timedelta(days=1))
    save_ranking(con, later, "run-3")
    history = score_history(con)
    assert history.num_rows == 2 * len(result.scores)
    assert con.execute("SELECT count(DISTINCT as_of) FROM bot_scores").fetchone()[0] in (0, 2)
