"""Train, calibrate and evaluate the EN/DE sentiment head; writes nlp/models/sentiment_e5_head.npz.

Run `python -m nlp.train_sentiment [DATA_DIR] [OUT_DIR]` (DATA_DIR defaults to
$RESONANZ_DATA or /work/shared/data). Embeddings are cached under $TMPDIR/resonanz-e5-cache
so a second run takes seconds instead of minutes.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.optimize import minimize_scalar
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, recall_score

from nlp.sentiment import HEAD_PATH, SentimentHead, SentimentModel
from nlp.sentiment_data import (
    LabelledTexts,
    read_germeval_docs,
    read_semeval_train,
    read_tweeteval_val,
    read_umsab,
    split_per_class,
    without,
)

# Chosen in a short search on held-out data (see nlp/models/MODEL_CARD.md).
C_VALUE = 1.0
SEMEVAL_PER_CLASS = 6000  # SemEval EN tweets per class (negatives run out at ~7.8k)
CALIBRATION_PER_CLASS = 300  # SemEval rows per class held out to fit the EN temperature
UMSAB_EN_WEIGHT = 3.0  # the few UMSAB EN rows left after removing TweetEval-val tweets
GERMEVAL_WEIGHT = 0.25  # GermEval is Deutsche-Bahn customer talk, mostly neutral: a light touch


def build_datasets(data_dir: Path, seed: int) -> dict[str, LabelledTexts]:
    """Return the fit and calibration sets per language; nothing here overlaps an evaluation split."""
    tweeteval_val = read_tweeteval_val(data_dir)
    # UMSAB EN is resampled from SemEval-2017 and 78% of its train split (all of its val split)
    # are TweetEval validation tweets: drop them, or the EN score is measured on training data.
    umsab_en = without(read_umsab(data_dir, "english", "train"), tweeteval_val)
    semeval_fit, semeval_calib = split_per_class(
        read_semeval_train(data_dir, SEMEVAL_PER_CLASS, seed), CALIBRATION_PER_CLASS, seed
    )
    return {
        "en_umsab": umsab_en,
        "en_semeval": semeval_fit,
        "en_calib": semeval_calib,
        "de_umsab": read_umsab(data_dir, "german", "train"),
        "de_germeval": read_germeval_docs(data_dir),
        "de_calib": read_umsab(data_dir, "german", "val"),
    }


def train_sentiment(data_dir: Path, out_dir: Path, seed: int = 13) -> dict:
    """Train per-language heads, calibrate them, save the artefact and return its metrics."""
    started = time.perf_counter()
    model = SentimentModel(head_path=out_dir / HEAD_PATH.name)
    embed = cached_embedder(model)
    sets = build_datasets(data_dir, seed)
    plan = {
        "en": ([sets["en_umsab"], sets["en_semeval"]], [UMSAB_EN_WEIGHT, 1.0], sets["en_calib"]),
        "de": ([sets["de_umsab"], sets["de_germeval"]], [1.0, GERMEVAL_WEIGHT], sets["de_calib"]),
    }
    heads = {}
    for lang, (parts, weights, calib) in plan.items():
        clf = _fit(parts, weights, C_VALUE, seed, embed)
        heads[lang] = (clf.coef_, clf.intercept_, _calibrate(clf, embed(calib), calib.labels))

    langs = ("en", "de")
    head = SentimentHead(
        langs,
        np.stack([heads[x][0] for x in langs]),
        np.stack([heads[x][1] for x in langs]),
        np.array([heads[x][2] for x in langs]),
    )
    head.save(model.head_path)
    metrics = evaluate_head(head, data_dir, embed)
    metrics["train_rows"] = {name: len(data) for name, data in sets.items()}
    metrics["temperature"] = {x: round(float(heads[x][2]), 3) for x in langs}
    metrics["seed"] = seed
    metrics["seconds"] = round(time.perf_counter() - started, 1)
    return metrics


def evaluate_head(head: SentimentHead, data_dir: Path, embed) -> dict:  # noqa: ANN001
    """Score a head on TweetEval val (macro-recall) and UMSAB EN/DE test (macro-F1)."""
    results = {}
    for key, data, metric in (
        ("tweeteval_val_macro_recall_en", read_tweeteval_val(data_dir), "recall"),
        ("umsab_test_macro_f1_en", read_umsab(data_dir, "english", "test"), "f1"),
        ("umsab_test_macro_f1_de", read_umsab(data_dir, "german", "test"), "f1"),
    ):
        predicted = head.probabilities(embed(data), data.lang).argmax(axis=1)
        scorer = recall_score if metric == "recall" else f1_score
        results[key] = round(float(scorer(data.labels, predicted, average="macro")), 4)
    return results


def _fit(parts: list[LabelledTexts], weights: list[float], c_value: float, seed: int, embed) -> LogisticRegression:  # noqa: ANN001
    """Fit a class-balanced logistic regression on the weighted union of `parts`."""
    features = np.vstack([embed(p) for p in parts])
    labels = np.concatenate([p.labels for p in parts])
    sample_weight = np.concatenate([np.full(len(p), w) for p, w in zip(parts, weights)])
    # Balance classes over the weighted pool: the evaluation metrics are macro-averaged.
    class_mass = np.bincount(labels, weights=sample_weight, minlength=3)
    sample_weight = sample_weight * (class_mass.sum() / (3 * class_mass))[labels]
    clf = LogisticRegression(C=c_value, max_iter=3000, random_state=seed)
    return clf.fit(features, labels, sample_weight=sample_weight)


def _calibrate(clf: LogisticRegression, features: np.ndarray, labels: np.ndarray) -> float:
    """Return the softmax temperature that minimises log-loss on held-out validation rows."""
    logits = features @ clf.coef_.T + clf.intercept_

    def nll(temperature: float) -> float:
        scaled = logits / temperature
        scaled = scaled - scaled.max(axis=1, keepdims=True)
        log_probs = scaled - np.log(np.exp(scaled).sum(axis=1, keepdims=True))
        return float(-log_probs[np.arange(len(labels)), labels].mean())

    return float(minimize_scalar(nll, bounds=(0.05, 20.0), method="bounded").x)


def cached_embedder(model: SentimentModel):  # noqa: ANN201
    """Return embed(LabelledTexts) -> vectors, cached on disk by the texts' hash."""
    cache = Path(os.environ.get("RESONANZ_E5_CACHE", Path(tempfile.gettempdir()) / "resonanz-e5-cache"))
    cache.mkdir(parents=True, exist_ok=True)

    def embed(data: LabelledTexts) -> np.ndarray:
        key = hashlib.sha256("\x1e".join(data.texts).encode("utf-8", "surrogatepass")).hexdigest()[:16]
        path = cache / f"{data.name}-{key}.npy"
        if path.exists():
            return np.load(path)
        vectors = model.embed(data.texts)
        np.save(path, vectors)
        return vectors

    return embed


def main(argv: list[str]) -> int:
    """Train from the command line and print the metrics."""
    data_dir = Path(argv[0] if argv else os.environ.get("RESONANZ_DATA", "/work/shared/data"))
    out_dir = Path(argv[1]) if len(argv) > 1 else HEAD_PATH.parent
    if not (data_dir / "sentiment_xlmt_umsab_en_de").is_dir():
        print(f"labelled data not found under {data_dir}; pass the data folder as the first argument")
        return 2
    metrics = train_sentiment(data_dir, out_dir)
    print(json.dumps(metrics, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
