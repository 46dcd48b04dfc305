"""rank_accounts on real TWCS and GermEval interactions: ranks, reasons, determinism."""

from __future__ import annotations

import csv
import json
import math
import random
import re
from collections import defaultdict
from datetime import datetime, timedelta, timezone

import networkx as nx
import pyarrow as pa
import pytest

from graph import format_top, rank_accounts
from graph.records import InfluenceScore
from graph_data import FIXTURES, interactions_table
from resonanz.settings import GraphSettings

SETTINGS = GraphSettings()


def test_known_brand_accounts_rank_top_10_of_their_real_graphs(twcs, germeval, germeval_signals):
    twcs_top = [s.account_id for s in rank_accounts(twcs, SETTINGS)[:10]]
    assert "AmazonHelp" in twcs_top and "AppleSupport" in twcs_top
    germeval_scores = rank_accounts(germeval, SETTINGS, post_signals=germeval_signals)
    assert germeval_scores[0].account_id == "DB_Bahn"


def test_returns_every_account_sorted_by_rank(twcs):
    scores = rank_accounts(twcs, SETTINGS)
    with open(FIXTURES / "twcs_edges.csv", newline="") as handle:
        accounts = {a for row in csv.DictReader(handle) if row["src_author"] != row["dst_author"] for a in (row["src_author"], row["dst_author"])}
    assert {s.account_id for s in scores} == accounts
    assert [s.rank for s in scores] == list(range(1, len(scores) + 1))
    assert all(a.score >= b.score for a, b in zip(scores, scores[1:]))
    assert {s.as_of for s in scores} == {max(twcs["created_at"].to_pylist())}


def test_pagerank_field_equals_networkx_on_decayed_weights(germeval):
    scores = rank_accounts(germeval, SETTINGS)
    as_of = scores[0].as_of
    graph = nx.DiGraph()
    for row in germeval.to_pylist():
        if row["src_account_id"] == row["dst_account_id"]:
            continue
        age = (as_of - row["created_at"]).total_seconds() / 86_400
        weight = SETTINGS.weights[row["kind"]] * math.exp(-math.log(2) * age / SETTINGS.half_life_days)
        previous = graph.get_edge_data(row["src_account_id"], row["dst_account_id"], {"weight": 0.0})["weight"]
        graph.add_edge(row["src_account_id"], row["dst_account_id"], weight=previous + weight)
    reference = nx.pagerank(graph, weight="weight", tol=1e-13, max_iter=10_000)
    assert max(abs(s.pagerank - reference[s.account_id]) for s in scores) < 1e-6
    in_degree = dict(graph.in_degree(weight="weight"))
    assert max(abs(s.in_degree - in_degree[s.account_id]) for s in scores) < 1e-9


def test_explanation_states_the_real_numbers(germeval, germeval_signals):
    scores = {s.account_id: s for s in rank_accounts(germeval, SETTINGS, post_signals=germeval_signals)}
    labels = {row["post_id"]: row for row in germeval_signals.to_pylist()}
    engaged, about_brand, reactions = set(), set(), defaultdict(set)
    for row in germeval.to_pylist():
        if row["dst_account_id"] == "DB_Bahn" and row["src_account_id"] != "DB_Bahn":
            engaged.add(row["src_account_id"])
            label = labels.get(row["post_id"])
            if label and label["brand_related"]:
                about_brand.add(row["src_account_id"])
            if label and label["sentiment"]:
                reactions[label["sentiment"]].add(row["post_id"])
    db = scores["DB_Bahn"]
    line = db.explanation
    assert f"by {len(engaged)} accounts ({len(about_brand)} about tracked brands)" in line
    assert f"{len(reactions['negative'])} negative" in line and f"{len(reactions['positive'])} positive" in line
    assert line.endswith(f"PageRank #1 of {len(scores)}.")
    assert "\n" not in line
    assert db.factors["engaging_accounts"] == len(engaged)
    assert db.factors["net_sentiment"] < 0  # Deutsche Bahn customers complain more than they praise


def test_brand_related_engagement_lifts_the_score():
    rows = [{"src": f"fan{i}", "dst": target, "post_id": f"{target}{i}"} for target in ("brandtalk", "smalltalk") for i in range(3)]
    signals = pa.Table.from_pylist(
        [{"source": "x", "post_id": f"brandtalk{i}", "brand_related": True, "sentiment": None} for i in range(3)]
    )
    without = {s.account_id: s for s in rank_accounts(interactions_table(rows), SETTINGS)}
    assert without["brandtalk"].score == without["smalltalk"].score
    with_signals = {s.account_id: s for s in rank_accounts(interactions_table(rows), SETTINGS, post_signals=signals)}
    assert with_signals["brandtalk"].rank == 1
    assert with_signals["brandtalk"].factors["brand_share"] == 1.0
    assert with_signals["brandtalk"].score == pytest.approx(1.5 * with_signals["smalltalk"].score)


def test_older_engagement_counts_less():
    now = datetime(2024, 6, 1, tzinfo=timezone.utc)
    rows = [{"src": f"fan{i}", "dst": "recent", "created_at": now} for i in range(3)]
    rows += [{"src": f"fan{i}", "dst": "stale", "created_at": now - timedelta(days=90)} for i in range(3)]
    scores = {s.account_id: s for s in rank_accounts(interactions_table(rows), SETTINGS)}
    assert scores["recent"].rank == 1
    assert scores["stale"].in_degree == pytest.approx(3 * 0.125)


def test_heavier_kinds_count_more():
    rows = [{"src": "a", "dst": "reposted", "kind": "repost"}, {"src": "a", "dst": "mentioned", "kind": "mention"}]
    scores = {s.account_id: s for s in rank_accounts(interactions_table(rows), SETTINGS)}
    assert scores["reposted"].rank < scores["mentioned"].rank
    assert (scores["reposted"].in_degree, scores["mentioned"].in_degree) == (2.0, 0.5)
    assert scores["a"].out_degree == 2.5


def test_same_input_gives_identical_output_whatever_the_row_order(twcs, germeval):
    table = pa.concat_tables([twcs, germeval])
    first, again = rank_accounts(table, SETTINGS), rank_accounts(table, SETTINGS)
    assert first == again
    order = list(range(table.num_rows))
    random.Random(7).shuffle(order)
    shuffled = rank_accounts(table.take(order), SETTINGS)
    assert [(s.source, s.account_id, s.rank, s.explanation) for s in shuffled] == [
        (s.source, s.account_id, s.rank, s.explanation) for s in first
    ]
    assert max(abs(a.score - b.score) for a, b in zip(first, shuffled)) < 1e-12


def test_linked_sites_shape_pagerank_but_are_not_ranked():
    rows = [{"src": "blogger", "dst": "site:example.org", "kind": "link"}, {"src": "fan", "dst": "blogger", "kind": "reply"}]
    scores = rank_accounts(interactions_table(rows), SETTINGS)
    assert [s.account_id for s in scores] == ["blogger", "fan"]
    assert scores[0].explanation.endswith("PageRank #1 of 2.")


def test_empty_and_self_loop_only_graphs_rank_nobody():
    assert rank_accounts(interactions_table([]), SETTINGS) == []
    assert rank_accounts(interactions_table([{"src": "a", "dst": "a"}]), SETTINGS) == []


def test_one_edge():
    (target, actor) = rank_accounts(interactions_table([{"src": "fan", "dst": "brand", "kind": "quote"}]), SETTINGS)
    assert (target.account_id, target.rank, actor.account_id, actor.rank) == ("brand", 1, "fan", 2)
    assert target.explanation == "Quoted by 1 account; PageRank #1 of 2."
    assert actor.explanation == "Nobody engaged with this account; it engaged with 1 account; PageRank #2 of 2."


def test_accounts_table_adds_handles_and_followers():
    accounts = pa.Table.from_pylist([{"source": "x", "account_id": "42", "handle": "DB_Bahn", "followers_count": 250_000}])
    scores = rank_accounts(interactions_table([{"src": "7", "dst": "42"}]), SETTINGS, accounts=accounts)
    assert scores[0].explanation == "@DB_Bahn: Replied to by 1 account; 250,000 followers; PageRank #1 of 2."
    assert scores[0].factors["followers"] == 250_000
    assert "followers" not in scores[1].factors


def test_rows_fit_the_influence_scores_table(tmp_path, germeval, germeval_signals):
    from warehouse.db import open_warehouse

    scores = rank_accounts(germeval, SETTINGS, post_signals=germeval_signals)
    con = open_warehouse(tmp_path / "rank.duckdb")
    con.executemany(
        "INSERT INTO influence_scores VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (s.as_of, s.source, s.account_id, s.rank, s.score, s.pagerank, s.in_degree, s.out_degree, s.explanation, json.dumps(s.factors), "run-1", s.person_id)
            for s in scores
        ],
    )
    assert con.execute("SELECT count(*), min(rank), max(rank) FROM influence_scores").fetchone() == (len(scores), 1, len(scores))
    assert con.execute("SELECT account_id FROM influence_scores WHERE rank = 1").fetchone() == ("DB_Bahn",)
    con.close()


def test_format_top_lists_the_first_n_with_reasons(twcs):
    text = format_top(rank_accounts(twcs, SETTINGS), 5)
    lines = text.splitlines()
    assert len(lines) == 6 and lines[0].split()[:2] == ["#", "account"]
    assert re.match(r"\s+1\s+twcs/\S+\s+\d\.\d{3}\s+\S.*PageRank #\d+ of 180\.$", lines[1])
    assert format_top([], 5) == "No accounts to rank: the interaction graph is empty."
    assert isinstance(rank_accounts(twcs, SETTINGS)[0], InfluenceScore)


def test_score_follows_the_documented_formula(germeval, germeval_signals):
    weights = json.loads((FIXTURES.parents[2] / "graph" / "influence_weights.json").read_text())["weights"]
    scores = rank_accounts(germeval, SETTINGS, post_signals=germeval_signals)
    top_pr = max(s.pagerank for s in scores)
    top_reach = max(s.factors["engaging_accounts"] for s in scores)
    top_in = max(s.in_degree for s in scores)
    for s in scores:
        f = s.factors
        structural = (
            weights["pagerank"] * s.pagerank / top_pr
            + weights["reach"] * math.log1p(f["engaging_accounts"]) / math.log1p(top_reach)
            + weights["in_degree"] * math.log1p(s.in_degree) / math.log1p(top_in)
        )
        assert s.score == pytest.approx(structural * (1 + 0.5 * f["brand_share"] + 0.25 * abs(f["net_sentiment"])))


def test_explanation_names_every_kind_and_the_main_one():
    rows = [{"src": f"r{i}", "dst": "hub", "kind": "repost"} for i in range(3)]
    rows += [{"src": "q", "dst": "hub", "kind": "quote"}, {"src": "m", "dst": "hub", "kind": "mention"}]
    hub = rank_accounts(interactions_table(rows), SETTINGS)[0]
    assert hub.explanation == "Reposted, quoted or mentioned by 5 accounts, mostly in reposts; PageRank #1 of 6."


def test_post_signals_without_brand_column_is_a_clear_error():
    signals = pa.Table.from_pylist([{"source": "x", "post_id": "p0", "sentiment": "negative"}])
    with pytest.raises(ValueError, match="post_signals table lacks column.*brand_related"):
        rank_accounts(interactions_table([{"src": "a", "dst": "b"}]), SETTINGS, post_signals=signals)
