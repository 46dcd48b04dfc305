"""Fit the structural influence weights on human judgements (PeerIndex pairs) and store them.

Data: influence_peerindex_pairs/pairs.csv under the data folder: 4,000 human judgements of
which of two Twitter accounts is more influential, 11 anonymised features per account
(Kaggle "Influencers in Social Networks", PeerIndex 2013; evaluation/research use only, so
only the fitted weights, never the rows, go into the repo).

Model: a Bradley–Terry fit of the product's own structural formula. Each account gets
`structural = Σ_k w_k · term_k` with the terms of `graph.influence.structural_terms`
(log-scaled counts divided by their maximum), and P(A judged more influential than B) =
σ(s · (structural_A − structural_B)). The weights are constrained to be ≥ 0, so the score can
only rise with each count, and are rescaled to sum to 1 − BRAND_PAGERANK_WEIGHT: the pairs
say nothing about brands, so the brand-topic PageRank keeps a weight set by design.

Evaluation: accounts appear in up to 52 pairs (985 distinct accounts), so plain K-fold CV
lets a model memorise accounts. Here accounts are split into 3 folds and a fold's test pairs
are those whose two accounts are both in it; training uses the pairs with neither account
in it (pairs straddling the two sides are left out). Repeated with 10 seeds; AUC and pairwise
accuracy are averaged over the repetitions.

Usage: python -m graph.train_influence [DATA_DIR] [--out DIR] [--seed 13]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from scipy.optimize import minimize
from sklearn.metrics import roc_auc_score

from graph.influence import STRUCTURAL_TERMS, STRUCTURAL_WEIGHTS_PATH, structural_terms

PAIRS_DIR = "influence_peerindex_pairs"
FEATURES = ("follower_count", "following_count", "listed_count", "mentions_received", "retweets_received",
            "mentions_sent", "retweets_sent", "posts", "network_feature_1", "network_feature_2", "network_feature_3")
BRAND_PAGERANK_WEIGHT = 0.15  # not identifiable from the pairs (no brands there): a design choice
FITTED_TERMS = tuple(name for name in STRUCTURAL_TERMS if name != "brand_pagerank")
L2 = 1e-3
CV_FOLDS = 3
CV_REPEATS = 10
# How the product's inputs are read off the 11 PeerIndex features; the kind weights are the
# product defaults (reply 1, repost 2, mention 0.5).
MAPPING = {
    "pagerank": "listed_count (being put on others' lists: endorsement by other accounts)",
    "reach": "mentions_received (accounts engaging with them)",
    "in_degree": "0.5 · mentions_received + 2 · retweets_received (the default kind weights)",
    "followers": "follower_count",
}


@dataclass(frozen=True)
class PeerIndexPairs:
    """Distinct accounts (rows of `features`) and the judged pairs as indices into them."""

    features: dict[str, np.ndarray]
    a: np.ndarray
    b: np.ndarray
    a_more_influential: np.ndarray


def load_pairs(data_dir: Path) -> PeerIndexPairs:
    """Read pairs.csv and identify accounts by their feature vector (the data has no ids)."""
    with open(data_dir / PAIRS_DIR / "pairs.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    side = {s: np.array([[float(r[f"{s}_{f}"]) for f in FEATURES] for r in rows]) for s in ("A", "B")}
    accounts, index = np.unique(np.vstack([side["A"], side["B"]]), axis=0, return_inverse=True)
    index = index.reshape(-1)
    return PeerIndexPairs(
        features={f: accounts[:, j] for j, f in enumerate(FEATURES)},
        a=index[: len(rows)],
        b=index[len(rows):],
        a_more_influential=np.array([int(r["Choice"]) for r in rows]),
    )


def peerindex_terms(features: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Return the product's structural terms computed from the PeerIndex features (see MAPPING)."""
    return structural_terms(
        endorsement=features["listed_count"],
        engaging_accounts=features["mentions_received"],
        weighted_in_degree=0.5 * features["mentions_received"] + 2.0 * features["retweets_received"],
        followers=features["follower_count"],
        log_endorsement=True,
    )


def fit_weights(terms: np.ndarray, pairs: PeerIndexPairs, mask: np.ndarray) -> np.ndarray:
    """Return non-negative Bradley–Terry weights (one per column of `terms`) fitted on the masked pairs."""
    diff = terms[pairs.a[mask]] - terms[pairs.b[mask]]
    sign = 2.0 * pairs.a_more_influential[mask] - 1.0

    def loss(weights: np.ndarray) -> tuple[float, np.ndarray]:
        margin = sign * (diff @ weights)
        value = np.logaddexp(0.0, -margin).mean() + L2 * weights @ weights
        slope = -(diff * (sign / (1.0 + np.exp(margin)))[:, None]).mean(axis=0) + 2 * L2 * weights
        return float(value), slope

    start = np.ones(terms.shape[1])
    return minimize(loss, start, jac=True, method="L-BFGS-B", bounds=[(0.0, None)] * terms.shape[1]).x


def account_disjoint_splits(pairs: PeerIndexPairs, seed: int, folds: int = CV_FOLDS) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (train, test) pair masks such that no account is on both sides."""
    fold = np.random.default_rng(seed).integers(0, folds, pairs.features[FEATURES[0]].size)
    for k in range(folds):
        in_a, in_b = fold[pairs.a] == k, fold[pairs.b] == k
        yield ~in_a & ~in_b, in_a & in_b


def grouped_cv(pairs: PeerIndexPairs, score: Callable[[np.ndarray], np.ndarray], seed: int,
               repeats: int = CV_REPEATS) -> dict[str, float]:
    """Return mean and spread of AUC and accuracy; `score(train_mask)` gives every account's score."""
    aucs, accuracies, evaluated = [], [], []
    for repeat in range(repeats):
        margin = np.zeros(pairs.a.size)
        tested = np.zeros(pairs.a.size, dtype=bool)
        for train, test in account_disjoint_splits(pairs, seed + repeat):
            values = score(train)
            margin[test] = values[pairs.a[test]] - values[pairs.b[test]]
            tested |= test
        truth = pairs.a_more_influential[tested]
        aucs.append(roc_auc_score(truth, margin[tested]))
        accuracies.append(float(np.mean((margin[tested] > 0) == truth)))
        evaluated.append(int(tested.sum()))
    return {"auc": float(np.mean(aucs)), "auc_sd": float(np.std(aucs)), "accuracy": float(np.mean(accuracies)),
            "pairs_tested_per_repeat": float(np.mean(evaluated))}


def pair_metrics(pairs: PeerIndexPairs, values: np.ndarray) -> dict[str, float]:
    """Return AUC and accuracy of an unfitted per-account score on every pair."""
    margin = values[pairs.a] - values[pairs.b]
    return {"auc": float(roc_auc_score(pairs.a_more_influential, margin)),
            "accuracy": float(np.mean((margin > 0) == pairs.a_more_influential))}


def product_weights(fitted: np.ndarray) -> dict[str, float]:
    """Rescale fitted weights to the product's: they and the brand PageRank weight sum to 1."""
    shares = fitted / fitted.sum()
    weights = {name: round(float((1 - BRAND_PAGERANK_WEIGHT) * share), 4) for name, share in zip(FITTED_TERMS, shares)}
    weights["brand_pagerank"] = BRAND_PAGERANK_WEIGHT
    return {name: weights[name] for name in STRUCTURAL_TERMS}


def train_influence(data_dir: Path, out_dir: Path, seed: int) -> dict[str, object]:
    """Fit on every pair, evaluate with account-disjoint CV, write influence_weights.json; return it."""
    pairs = load_pairs(data_dir)
    terms = peerindex_terms(pairs.features)
    matrix = np.column_stack([terms[name] for name in FITTED_TERMS])
    everything = np.ones(pairs.a.size, dtype=bool)
    weights = product_weights(fit_weights(matrix, pairs, everything))
    structural = sum(weights[name] * terms[name] for name in FITTED_TERMS)
    cv = grouped_cv(pairs, lambda train: matrix @ fit_weights(matrix, pairs, train), seed)
    report: dict[str, object] = {
        "weights": weights,
        "formula": "structural = Σ weight · term; term = log(1 + x) / max over the ranked accounts for counts, "
                   "PageRank / max in the product (log listed count / max in this fit)",
        "provenance": {
            "data": f"{PAIRS_DIR}/pairs.csv (Kaggle 'Influencers in Social Networks', PeerIndex 2013; "
                    "research/evaluation use, rows not redistributed)",
            "pairs": int(pairs.a.size),
            "accounts": int(pairs.features[FEATURES[0]].size),
            "mapping": MAPPING,
            "fit": f"Bradley–Terry logistic loss on score differences, weights ≥ 0, L2 {L2}, scipy L-BFGS-B",
            "brand_pagerank": f"fixed at {BRAND_PAGERANK_WEIGHT} by design: the pairs have no brand data",
            "seed": seed,
            "account_disjoint_cv": {"folds": CV_FOLDS, "repeats": CV_REPEATS, **cv},
            "in_sample": pair_metrics(pairs, structural),
            "rebuild": "python -m graph.train_influence /work/shared/data --out graph --seed 13",
            "trained_at": datetime.now(UTC).strftime("%Y-%m-%d"),
        },
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / STRUCTURAL_WEIGHTS_PATH.name).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    return report


def main(argv: list[str]) -> int:
    """Fit from the command line and print the weights and their evaluation."""
    parser = argparse.ArgumentParser(prog="python -m graph.train_influence")
    parser.add_argument("data_dir", nargs="?", default=os.environ.get("RESONANZ_DATA", "/work/shared/data"))
    parser.add_argument("--out", default=str(STRUCTURAL_WEIGHTS_PATH.parent))
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args(argv)
    data_dir = Path(args.data_dir)
    if not (data_dir / PAIRS_DIR / "pairs.csv").is_file():
        print(f"{data_dir / PAIRS_DIR / 'pairs.csv'} not found; pass the data folder as the first argument")
        return 2
    report = train_influence(data_dir, Path(args.out), args.seed)
    print(json.dumps(report, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
