"""One person across sources (CRM links) counted as one node; Arrow-backed result rows; explanations say each thing once."""

from __future__ import annotations

import re

import pyarrow as pa
from graph_data import interactions_table

from graph.build import build_edges, merge_accounts
from graph.ranking import rank_all
from graph.records import ArrowRows, InfluenceScore
from resonanz.settings import GraphSettings

SETTINGS = GraphSettings()


def _table() -> pa.Table:
    rows = [{"src": f"fan{i}", "dst": "anna_x", "source": "x", "post_id": f"x{i}"} for i in range(6)]
    rows += [{"src": f"fan{i}", "dst": "anna_m", "source": "mastodon", "post_id": f"m{i}"} for i in range(5)]
    rows += [{"src": f"fan{i}", "dst": "bert", "source": "x", "post_id": f"b{i}"} for i in range(8)]
    rows += [{"src": "anna_x", "dst": "anna_alt", "source": "x", "post_id": "self"}]  # her second X account
    return interactions_table(rows)


IDENTITIES = pa.table({"source": ["x", "mastodon", "x", "x"], "account_id": ["anna_x", "anna_m", "anna_alt", "nobody_here"],
                       "person_id": ["cust-7", "cust-7", "cust-7", "cust-9"]})


def test_merge_folds_linked_accounts_into_one_node_and_drops_their_mutual_edges():
    edges = build_edges(_table(), SETTINGS.weights, SETTINGS.half_life_days)
    merged, merge = merge_accounts(edges, IDENTITIES)
    assert merged.n_nodes == edges.n_nodes - 2 and merge.merged
    anna = merged.node_account.index("anna_m")  # ("mastodon", "anna_m") sorts first, so it names the person
    # 11 fans' interactions reach the person; anna_x -> anna_alt became a self-loop and was dropped.
    assert merged.dst.tolist().count(anna) == 11 and merged.src.size == edges.src.size - 1
    assert merge.person[edges.node_account.index("anna_x")] == "cust-7"
    same, plain = merge_accounts(edges, None)
    assert same is edges and not plain.merged


def test_each_linked_account_keeps_its_own_row_with_the_person_visible():
    alone = {s.account_id: s for s in rank_all(_table(), SETTINGS).scores}
    assert alone["bert"].rank == 1  # 8 fans beat 6 or 5 on either account
    result = rank_all(_table(), SETTINGS, identities=IDENTITIES)
    scores = {s.account_id: s for s in result.scores}
    assert set(scores) == set(alone)
    assert scores["anna_x"].score == scores["anna_m"].score == scores["anna_alt"].score > scores["bert"].score
    assert {scores["anna_x"].rank, scores["anna_m"].rank, scores["anna_alt"].rank} == {1, 2, 3} and scores["bert"].rank == 4
    assert scores["anna_x"].person_id == "cust-7" and scores["bert"].person_id is None
    assert "Counted as one person with mastodon/anna_m, x/anna_alt (linked in the CRM)" in scores["anna_x"].explanation
    assert [s.rank for s in result.scores] == list(range(1, len(result.scores) + 1))


def test_scores_are_arrow_backed_and_read_like_a_list():
    scores = rank_all(_table(), SETTINGS).scores
    assert isinstance(scores, ArrowRows) and scores.table.num_rows == len(scores)
    assert isinstance(scores[0], InfluenceScore) and scores[-1].rank == len(scores)
    assert [s.account_id for s in scores[:2]] == [s.account_id for s in list(scores)[:2]]
    assert isinstance(scores[0].factors, dict) and "pagerank" in scores[0].factors


def test_explanations_state_each_figure_once_in_plain_words(twcs, germeval, germeval_signals):
    scores = rank_all(pa.concat_tables([twcs, germeval]), SETTINGS, post_signals=germeval_signals).scores
    for score in scores[:20]:
        text = score.explanation
        assert text.count("PageRank") == 0 and text.count("Why:") == 0
        first, _, rest = text.partition(". Score driven mostly by: ")
        engaged = re.match(r"(?:@\S+: )?([\d,]+) accounts? ", first)
        if engaged and rest:
            # The number of engaging accounts is said in the first sentence and not again.
            assert not re.search(rf"\b{engaged.group(1)} (different )?(accounts|people)\b", rest)
