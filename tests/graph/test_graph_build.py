"""Edges from an interactions table: kind weights, time decay, what is dropped."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import numpy as np
import pyarrow as pa
import pytest

from graph.build import build_edges, decay_factor
from graph_data import interactions_table

WEIGHTS = {"reply": 1.0, "repost": 2.0, "quote": 2.0, "mention": 0.5, "link": 0.5}
NOW = datetime(2024, 3, 1, tzinfo=timezone.utc)


def test_decay_halves_per_half_life():
    assert decay_factor(np.array([0.0, 30.0, 60.0]), 30.0) == pytest.approx([1.0, 0.5, 0.25])
    with pytest.raises(ValueError, match="half_life_days"):
        decay_factor(np.array([1.0]), 0.0)


def test_weight_is_kind_weight_times_decay_against_newest_interaction():
    table = interactions_table(
        [
            {"src": "a", "dst": "b", "kind": "repost", "created_at": NOW},
            {"src": "c", "dst": "b", "kind": "mention", "created_at": NOW - timedelta(days=30)},
            {"src": "d", "dst": "b", "kind": "reply", "created_at": NOW - timedelta(days=45)},
        ]
    )
    edges = build_edges(table, WEIGHTS, 30.0)
    assert edges.as_of == NOW
    assert edges.weight.tolist() == pytest.approx([2.0, 0.25, 2 ** -1.5])
    assert edges.node_account == ["a", "b", "c", "d"]
    assert edges.dst.tolist() == [1, 1, 1]


def test_explicit_as_of_drops_later_interactions_and_naive_means_utc():
    table = interactions_table(
        [
            {"src": "a", "dst": "b", "created_at": NOW - timedelta(days=10)},
            {"src": "a", "dst": "c", "created_at": NOW},
        ]
    )
    edges = build_edges(table, WEIGHTS, 10.0, as_of=(NOW - timedelta(days=5)).replace(tzinfo=None))
    assert edges.as_of == NOW - timedelta(days=5)
    assert edges.weight.tolist() == pytest.approx([math.sqrt(0.5)])
    assert edges.node_account == ["a", "b"]


def test_self_loops_and_zero_weight_kinds_are_dropped():
    table = interactions_table(
        [
            {"src": "a", "dst": "a"},
            {"src": "a", "dst": "b", "kind": "link"},
            {"src": "b", "dst": "c", "kind": "reply"},
        ]
    )
    edges = build_edges(table, {**WEIGHTS, "link": 0.0}, 30.0)
    assert [(edges.node_account[s], edges.node_account[d]) for s, d in zip(edges.src, edges.dst)] == [("b", "c")]


def test_same_handle_on_two_sources_is_two_nodes():
    table = interactions_table([{"src": "a", "dst": "b", "source": "x"}, {"src": "a", "dst": "b", "source": "reddit"}])
    edges = build_edges(table, WEIGHTS, 30.0)
    assert list(zip(edges.node_source, edges.node_account)) == [("reddit", "a"), ("reddit", "b"), ("x", "a"), ("x", "b")]


def test_missing_timestamp_counts_at_as_of():
    table = interactions_table([{"src": "a", "dst": "b", "created_at": None}, {"src": "c", "dst": "b", "created_at": NOW}])
    assert build_edges(table, WEIGHTS, 30.0).weight.tolist() == [1.0, 1.0]


def test_clear_errors_for_bad_input():
    with pytest.raises(ValueError, match="unknown interaction kind.*'like'"):
        build_edges(interactions_table([{"src": "a", "dst": "b", "kind": "like"}]), WEIGHTS, 30.0)
    with pytest.raises(ValueError, match="no weight for kind.*'quote'"):
        build_edges(interactions_table([{"src": "a", "dst": "b", "kind": "quote"}]), {"reply": 1.0}, 30.0)
    with pytest.raises(ValueError, match="lacks column.*created_at"):
        build_edges(interactions_table([{"src": "a", "dst": "b"}]).drop_columns(["created_at"]), WEIGHTS, 30.0)
    with pytest.raises(ValueError, match="pass as_of"):
        build_edges(interactions_table([{"src": "a", "dst": "b", "created_at": None}]), WEIGHTS, 30.0)
    with pytest.raises(ValueError, match="dst_account_id has 1 missing"):
        build_edges(interactions_table([{"src": "a", "dst": None}]), WEIGHTS, 30.0)
    as_text = interactions_table([{"src": "a", "dst": "b"}]).set_column(6, "created_at", pa.array(["2024-01-01"]))
    with pytest.raises(ValueError, match="must be a timestamp"):
        build_edges(as_text, WEIGHTS, 30.0)
