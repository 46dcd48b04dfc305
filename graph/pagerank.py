"""Weighted PageRank by sparse power iteration, matching `networkx.pagerank` semantics.

Written here rather than calling networkx because networkx builds a Python dict per node and
is two orders of magnitude slower on a million edges; networkx stays the reference in tests.
"""

from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp

log = logging.getLogger(__name__)


def weighted_pagerank(
    src: np.ndarray,
    dst: np.ndarray,
    weight: np.ndarray,
    n_nodes: int,
    damping: float = 0.85,
    tol: float = 1e-10,
    max_iter: int = 1000,
    personalization: np.ndarray | None = None,
) -> np.ndarray:
    """Return the PageRank vector of the weighted digraph given as parallel edge arrays.

    Duplicate edges are summed. A node without out-weight (dangling) spreads its rank evenly
    over all nodes, as networkx does with no personalization. With `personalization` (a
    distribution over nodes) random jumps and dangling rank follow it instead, as in networkx.
    Iteration stops when the L1 change falls below `tol`; the result sums to 1.
    """
    if n_nodes == 0:
        return np.zeros(0)
    if not 0.0 <= damping < 1.0:
        raise ValueError(f"damping must be in [0, 1), got {damping}")
    matrix = sp.csr_array(
        (np.asarray(weight, dtype=np.float64), (np.asarray(src), np.asarray(dst))),
        shape=(n_nodes, n_nodes),
    )
    matrix.sum_duplicates()
    out_weight = np.asarray(matrix.sum(axis=1)).ravel()
    dangling = out_weight == 0.0
    inv_out = np.divide(1.0, out_weight, out=np.zeros_like(out_weight), where=~dangling)
    # Transposed once so each iteration is a single CSR mat-vec.
    transition_t = (sp.diags_array(inv_out) @ matrix).T.tocsr()
    jump = np.full(n_nodes, 1.0 / n_nodes) if personalization is None else np.asarray(personalization, dtype=np.float64)
    rank = np.full(n_nodes, 1.0 / n_nodes)
    for iteration in range(max_iter):
        previous = rank
        rank = damping * (transition_t @ previous)
        rank += (damping * previous[dangling].sum() + 1.0 - damping) * jump
        if np.abs(rank - previous).sum() < tol:
            break
    else:
        log.warning("PageRank stopped after %d iterations without reaching tol=%g", max_iter, tol)
    return rank / rank.sum()
