"""Groups of accounts that engage with each other: modularity communities on the interaction graph.

The directed, weighted graph is folded into an undirected one (w(u,v) = w(u→v) + w(v→u)).
igraph's Leiden (modularity objective) is used when igraph is installed: about a second for a
million edges here, and its communities are guaranteed to be connected. Without igraph,
networkx's Louvain gives the same kind of partition, fast enough for tens of thousands of
edges. Both are seeded, so a re-run gives the same groups.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import scipy.sparse as sp

from graph.structure import fold, igraph_of

SEED = 42
# One Leiden pass: on a 1M-edge graph a second pass raised modularity by 0.003 (0.279 → 0.282)
# and took 55 % longer (bench/graph_scale.py).
LEIDEN_ITERATIONS = 1


def detect_communities(matrix: sp.csr_array, seed: int = SEED, undirected: Any | None = None) -> np.ndarray:
    """Return a community label per node: 0 is the largest community, then 1, …; isolated nodes get their own.

    `undirected` is an igraph graph of the folded matrix (from `graph.structure.igraph_of`), to
    share one graph between k-core and communities.
    """
    n = matrix.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    folded = fold(matrix)
    if undirected is None:
        undirected = igraph_of(folded, n)
    if undirected is None:
        labels = _networkx_louvain(folded, n, seed)
    else:
        labels = _igraph_leiden(undirected, folded.data, seed)
    return _relabel_by_size(labels)


def backend() -> str:
    """Return which library detects communities in this installation."""
    try:
        import igraph  # noqa: F401
    except ImportError:
        return "networkx-louvain"
    return "igraph-leiden"


def _igraph_leiden(graph: Any, weights: np.ndarray, seed: int) -> np.ndarray:
    import igraph

    # igraph draws from Python's `random` module by default; a private generator keeps it repeatable.
    igraph.set_random_number_generator(random.Random(seed))
    try:
        partition = graph.community_leiden(objective_function="modularity", weights=weights.tolist(), n_iterations=LEIDEN_ITERATIONS)
    finally:
        igraph.set_random_number_generator(random)
    return np.asarray(partition.membership, dtype=np.int64)


def _networkx_louvain(folded: sp.coo_array, n: int, seed: int) -> np.ndarray:
    import networkx as nx

    graph = nx.Graph()
    graph.add_nodes_from(range(n))
    graph.add_weighted_edges_from(zip(folded.row.tolist(), folded.col.tolist(), folded.data.tolist()))
    labels = np.empty(n, dtype=np.int64)
    for label, members in enumerate(nx.community.louvain_communities(graph, weight="weight", seed=seed)):
        labels[list(members)] = label
    return labels


def _relabel_by_size(labels: np.ndarray) -> np.ndarray:
    """Number communities by decreasing size, ties by their smallest node, so labels are stable."""
    _, first, inverse, counts = np.unique(labels, return_index=True, return_inverse=True, return_counts=True)
    order = np.lexsort((first, -counts))
    rank = np.empty(order.size, dtype=np.int64)
    rank[order] = np.arange(order.size)
    return rank[inverse.ravel()]
