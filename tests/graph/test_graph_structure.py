"""HITS, k-core, personalised PageRank and communities against networkx on the real fixture edges."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pyarrow as pa
import pytest
import scipy.sparse as sp

from graph.build import build_edges
from graph.communities import _networkx_louvain, detect_communities
from graph.structure import _peel_cores, adjacency, core_numbers, hits, personalised_pagerank
from resonanz.settings import GraphSettings

SETTINGS = GraphSettings()


@pytest.fixture(scope="module")
def real(twcs, germeval):
    edges = build_edges(pa.concat_tables([twcs, germeval]), SETTINGS.weights, SETTINGS.half_life_days)
    return edges, adjacency(edges.src, edges.dst, edges.weight, edges.n_nodes)


def to_networkx(matrix: sp.csr_array, directed: bool = True) -> nx.Graph:
    graph = nx.DiGraph() if directed else nx.Graph()
    graph.add_nodes_from(range(matrix.shape[0]))
    coo = matrix.tocoo()
    graph.add_weighted_edges_from(zip(coo.row.tolist(), coo.col.tolist(), coo.data.tolist()))
    return graph


def test_hits_equals_networkx_on_the_largest_component(real):
    edges, matrix = real
    # HITS is only unique on a connected graph; the real graph is many stars, so take the largest piece.
    graph = to_networkx(matrix)
    largest = sorted(max(nx.weakly_connected_components(graph), key=len))
    sub = matrix[largest][:, largest]
    hubs, authorities = hits(sub, tol=1e-14)
    ref_hubs, ref_authorities = nx.hits(to_networkx(sub), max_iter=10_000, tol=1e-14)
    assert np.abs(authorities - np.array([ref_authorities[i] for i in range(len(largest))])).max() < 1e-6
    assert np.abs(hubs - np.array([ref_hubs[i] for i in range(len(largest))])).max() < 1e-6
    # DB_Bahn is the authority of its own conversation.
    accounts = [edges.node_account[i] for i in largest]
    assert accounts[int(np.argmax(authorities))] in {"DB_Bahn", "AmazonHelp", "ChipotleTweets"}


def test_core_numbers_equal_networkx_with_and_without_igraph(real):
    _, matrix = real
    undirected = to_networkx(matrix, directed=False)
    undirected.remove_edges_from(nx.selfloop_edges(undirected))
    reference = nx.core_number(undirected)
    expected = np.array([reference[i] for i in range(matrix.shape[0])])
    assert (core_numbers(matrix) == expected).all()
    folded = (matrix + matrix.T).tocsr()
    assert (_peel_cores(folded) == expected).all()
    assert expected.max() >= 2


def test_personalised_pagerank_equals_networkx_and_favours_brand_activity(real):
    edges, matrix = real
    interest = np.zeros(edges.n_nodes)
    brand_node = edges.node_account.index("DB_Bahn")
    interest[edges.src[edges.dst == brand_node]] = 1.0
    ours = personalised_pagerank(edges.src, edges.dst, edges.weight, edges.n_nodes, interest)
    graph = to_networkx(matrix)
    reference = nx.pagerank(graph, personalization={i: v for i, v in enumerate(interest)}, tol=1e-13, max_iter=10_000)
    assert np.abs(ours - np.array([reference[i] for i in range(edges.n_nodes)])).max() < 1e-6
    plain = personalised_pagerank(edges.src, edges.dst, edges.weight, edges.n_nodes, np.zeros(edges.n_nodes))
    assert ours[brand_node] > plain[brand_node]
    with pytest.raises(ValueError, match="non-negative"):
        personalised_pagerank(edges.src, edges.dst, edges.weight, edges.n_nodes, -interest)


def test_communities_separate_the_two_real_conversations(real):
    edges, matrix = real
    labels = detect_communities(matrix)
    assert labels.shape == (edges.n_nodes,)
    sizes = np.bincount(labels)
    assert (np.diff(sizes) <= 0).all()  # 0 is the largest community
    # No community mixes the German rail conversation with the English customer-care one.
    for label in np.unique(labels):
        assert len({edges.node_source[i] for i in np.flatnonzero(labels == label)}) == 1
    assert (detect_communities(matrix) == labels).all()  # seeded: same groups on a re-run
    # Leiden's modularity is at least as good as networkx Louvain's on the same graph.
    graph = to_networkx((matrix + matrix.T).tocsr(), directed=False)
    ours = nx.community.modularity(graph, [set(np.flatnonzero(labels == k).tolist()) for k in np.unique(labels)])
    louvain = _networkx_louvain(sp.triu(matrix + matrix.T, k=1).tocoo(), edges.n_nodes, 42)
    theirs = nx.community.modularity(graph, [set(np.flatnonzero(louvain == k).tolist()) for k in np.unique(louvain)])
    assert ours >= theirs - 0.01 and ours > 0.8
