"""Our sparse PageRank against networkx, on real edges and on the edge cases."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pyarrow as pa
import pytest

from graph.build import build_edges
from graph.pagerank import weighted_pagerank
from resonanz.settings import GraphSettings


def networkx_pagerank(src, dst, weight, n_nodes: int, damping: float = 0.85) -> np.ndarray:
    """Reference: networkx on a DiGraph whose parallel edges are summed, as ours are."""
    graph = nx.DiGraph()
    graph.add_nodes_from(range(n_nodes))
    for s, d, w in zip(src.tolist(), dst.tolist(), weight.tolist()):
        previous = graph.get_edge_data(s, d, {"weight": 0.0})["weight"]
        graph.add_edge(s, d, weight=previous + w)
    ranks = nx.pagerank(graph, alpha=damping, weight="weight", tol=1e-13, max_iter=10_000)
    return np.array([ranks[i] for i in range(n_nodes)])


@pytest.mark.parametrize("dataset", ["twcs", "germeval", "both"])
def test_equals_networkx_on_real_interactions(dataset, twcs, germeval):
    table = {"twcs": twcs, "germeval": germeval, "both": pa.concat_tables([twcs, germeval])}[dataset]
    edges = build_edges(table, GraphSettings().weights, GraphSettings().half_life_days)
    assert edges.n_nodes > 100
    ours = weighted_pagerank(edges.src, edges.dst, edges.weight, edges.n_nodes)
    reference = networkx_pagerank(edges.src, edges.dst, edges.weight, edges.n_nodes)
    assert np.abs(ours - reference).max() < 1e-6
    assert ours.sum() == pytest.approx(1.0)


@pytest.mark.parametrize("damping", [0.5, 0.85, 0.99])
def test_damping_matches_networkx(damping, germeval):
    edges = build_edges(germeval, GraphSettings().weights, 30.0)
    ours = weighted_pagerank(edges.src, edges.dst, edges.weight, edges.n_nodes, damping=damping, tol=1e-13, max_iter=10_000)
    reference = networkx_pagerank(edges.src, edges.dst, edges.weight, edges.n_nodes, damping=damping)
    assert np.abs(ours - reference).max() < 1e-6


def test_empty_graph():
    assert weighted_pagerank(np.array([], int), np.array([], int), np.array([]), 0).size == 0


def test_one_edge_matches_networkx():
    src, dst, w = np.array([0]), np.array([1]), np.array([2.0])
    ours = weighted_pagerank(src, dst, w, 2)
    assert np.abs(ours - networkx_pagerank(src, dst, w, 2)).max() < 1e-6
    # The acted-upon node collects the influence.
    assert ours[1] > ours[0]


def test_dangling_nodes_spread_evenly_like_networkx():
    # 2 and 3 have no out-edges; 4 is isolated.
    src, dst, w = np.array([0, 1, 0]), np.array([2, 2, 3]), np.array([1.0, 3.0, 0.5])
    ours = weighted_pagerank(src, dst, w, 5)
    assert np.abs(ours - networkx_pagerank(src, dst, w, 5)).max() < 1e-6


def test_duplicate_edges_are_summed():
    duplicated = weighted_pagerank(np.array([0, 0, 0, 1]), np.array([1, 1, 2, 2]), np.array([1.0, 2.0, 1.0, 1.0]), 3)
    summed = weighted_pagerank(np.array([0, 0, 1]), np.array([1, 2, 2]), np.array([3.0, 1.0, 1.0]), 3)
    assert np.abs(duplicated - summed).max() < 1e-12


def test_weights_change_the_flow():
    src, dst = np.array([0, 0]), np.array([1, 2])
    heavy_to_1 = weighted_pagerank(src, dst, np.array([4.0, 1.0]), 3)
    assert heavy_to_1[1] > heavy_to_1[2]
    assert np.abs(heavy_to_1 - networkx_pagerank(src, dst, np.array([4.0, 1.0]), 3)).max() < 1e-6


def test_rejects_damping_of_one():
    with pytest.raises(ValueError, match="damping"):
        weighted_pagerank(np.array([0]), np.array([1]), np.array([1.0]), 2, damping=1.0)
