"""Structural scores on the weighted interaction graph: HITS, k-core, personalised PageRank.

All of them work on the same parallel edge arrays as `graph.pagerank` (src, dst, weight over
`n_nodes` nodes) and use scipy.sparse; networkx is their reference in the tests.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import scipy.sparse as sp

from graph.pagerank import weighted_pagerank

log = logging.getLogger(__name__)
IGRAPH_CHUNK = 1_000_000


def adjacency(src: np.ndarray, dst: np.ndarray, weight: np.ndarray, n_nodes: int) -> sp.csr_array:
    """Return the n×n weighted adjacency matrix, duplicate edges summed."""
    matrix = sp.csr_array(
        (np.asarray(weight, dtype=np.float64), (np.asarray(src), np.asarray(dst))), shape=(n_nodes, n_nodes)
    )
    matrix.sum_duplicates()
    return matrix


def hits(
    matrix: sp.csr_array, tol: float = 1e-10, max_iter: int = 1000
) -> tuple[np.ndarray, np.ndarray]:
    """Return (hubs, authorities) of a weighted adjacency matrix, each summing to 1.

    Authorities are accounts many good hubs engage with; hubs are accounts that engage with
    good authorities. Power iteration on AᵀA, as networkx.hits, which it matches in the tests.
    """
    n = matrix.shape[0]
    if n == 0 or matrix.nnz == 0:
        empty = np.full(n, 1.0 / n) if n else np.zeros(0)
        return empty, empty.copy()
    transpose = matrix.T.tocsr()
    authority = np.full(n, 1.0 / n)
    for _ in range(max_iter):
        previous = authority
        authority = transpose @ (matrix @ previous)
        authority /= authority.max()
        if np.abs(authority - previous).sum() < tol:
            break
    else:
        log.warning("HITS stopped after %d iterations without reaching tol=%g", max_iter, tol)
    hubs = matrix @ authority
    return hubs / hubs.sum(), authority / authority.sum()


def fold(matrix: sp.csr_array) -> sp.coo_array:
    """Return the undirected graph as upper-triangle weights w(u,v) = w(u→v) + w(v→u), self-loops dropped."""
    return sp.triu(matrix + matrix.T, k=1).tocoo()


def igraph_of(folded: sp.coo_array, n_nodes: int) -> Any | None:
    """Return the folded graph as an undirected igraph.Graph, or None when igraph is not installed."""
    try:
        import igraph
    except ImportError:
        return None
    graph = igraph.Graph(n=n_nodes, directed=False)
    # Lists of pairs load twice as fast as a numpy array (which igraph walks element by element);
    # a million pairs at a time keeps the Python tuples from costing gigabytes at 10M edges.
    for start in range(0, folded.nnz, IGRAPH_CHUNK):
        stop = start + IGRAPH_CHUNK
        graph.add_edges(list(zip(folded.row[start:stop].tolist(), folded.col[start:stop].tolist())))
    return graph


def core_numbers(matrix: sp.csr_array, undirected: Any | None = None) -> np.ndarray:
    """Return each node's k-core number on the undirected, unweighted graph (self-loops ignored).

    Uses igraph's linear-time coreness when igraph is installed (or an igraph graph from
    `igraph_of` is passed); otherwise peels in numpy, one vectorised round per degree level.
    """
    n = matrix.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if undirected is None:
        undirected = igraph_of(fold(matrix), n)
    if undirected is not None:
        return np.asarray(undirected.coreness(), dtype=np.int64)
    folded = fold(matrix)
    return _peel_cores((folded + folded.T).tocsr())


def _peel_cores(undirected: sp.csr_array) -> np.ndarray:
    """Return core numbers by repeated removal of nodes whose remaining degree is below k."""
    n = undirected.shape[0]
    binary = undirected.copy()
    binary.data[:] = 1.0
    degree = np.asarray(binary.sum(axis=1)).ravel()
    alive = np.ones(n, dtype=bool)
    core = np.zeros(n, dtype=np.int64)
    k = 0
    while alive.any():
        k = max(k, int(degree[alive].min()))
        while True:
            drop = alive & (degree <= k)
            if not drop.any():
                break
            core[drop] = k
            alive &= ~drop
            degree -= binary @ drop.astype(np.float64)
        k += 1
    return core


def personalised_pagerank(
    src: np.ndarray,
    dst: np.ndarray,
    weight: np.ndarray,
    n_nodes: int,
    interest: np.ndarray,
    damping: float = 0.85,
) -> np.ndarray:
    """Return topic-sensitive PageRank: random jumps land on nodes in proportion to `interest`.

    With no interest anywhere it falls back to plain PageRank, so a graph without brand
    signals still gets a meaningful value.
    """
    interest = np.asarray(interest, dtype=np.float64)
    if interest.size != n_nodes or (interest < 0).any():
        raise ValueError("interest must be a non-negative value per node")
    if interest.sum() <= 0:
        return weighted_pagerank(src, dst, weight, n_nodes, damping)
    return weighted_pagerank(src, dst, weight, n_nodes, damping, personalization=interest / interest.sum())
