"""How far re-calibration alone could move the default sentiment model; writes bench/results/sentiment_headroom.json.

The model's label is the arg-max of its calibrated probabilities. Any re-calibration, class
prior or per-class threshold changes only which class wins at the margin, i.e. adds one bias per
class to the log-probabilities. This script searches those biases (neutral fixed at 0, the other
two on a grid) *on the evaluation set itself*: the best score found is an upper bound for every
such fix, not a figure the product can claim. It also prints each set's confusion matrix and
per-class recall, to show where the errors are.

Reads /work/shared/data (or $RESONANZ_DATA) and says so when it is absent.
Usage: python -m bench.sentiment_headroom [--precision auto fp32 ...]   (default: auto and fp32)
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import confusion_matrix, recall_score

from bench.machine import machine_info
from bench.rows import print_rows, row, write_results
from nlp.e5_sentiment import FineTunedSentimentModel
from nlp.sentiment_data import LABELS, LabelledTexts, read_tweeteval_val, read_umsab

DATA = Path(os.environ.get("RESONANZ_DATA", "/work/shared/data"))
RESULTS = Path(__file__).resolve().parent / "results" / "sentiment_headroom.json"
BIASES = np.round(np.arange(-1.5, 1.5001, 0.02), 2)  # wide enough that no optimum sits on the edge here
NEUTRAL = LABELS.index("neutral")


def macro_score(labels: np.ndarray, predicted: np.ndarray, metric: str) -> float:
    """Macro-recall or macro-F1 over the three classes (scikit-learn's figures, from one bincount:
    the bias search below scores tens of thousands of label vectors)."""
    matrix = np.bincount(labels * 3 + predicted, minlength=9).reshape(3, 3).astype(float)
    hits = np.diag(matrix)
    recall = np.divide(hits, matrix.sum(axis=1), out=np.zeros(3), where=matrix.sum(axis=1) > 0)
    if metric == "macro_recall":
        return float(recall.mean())
    precision = np.divide(hits, matrix.sum(axis=0), out=np.zeros(3), where=matrix.sum(axis=0) > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(3), where=precision + recall > 0)
    return float(f1.mean())


def best_biases(log_probs: np.ndarray, labels: np.ndarray, metric: str) -> tuple[float, tuple[float, float, float]]:
    """Return the best score any per-class bias reaches on these rows, and the biases (neutral's is 0)."""
    others = [c for c in range(3) if c != NEUTRAL]
    best = (-1.0, (0.0, 0.0, 0.0))
    for first in BIASES:
        for second in BIASES:
            bias = np.zeros(3)
            bias[others] = first, second
            score = macro_score(labels, (log_probs + bias).argmax(axis=1), metric)
            if score > best[0]:
                best = (score, tuple(float(b) for b in bias))
    return best


def headroom_rows(model: FineTunedSentimentModel, data: LabelledTexts, metric: str, split: str) -> tuple[list[dict], dict]:
    """Rows for one set: the model's score, per-class recall and the bias bound; plus its confusion matrix."""
    log_probs = np.log(np.clip(model.probabilities(data.texts, data.lang), 1e-12, 1.0))
    predicted = log_probs.argmax(axis=1)
    task = f"sentiment ({model.precision})"
    rows = [row(task, data.name, data.lang, split, metric, macro_score(data.labels, predicted, metric), len(data))]
    per_class = recall_score(data.labels, predicted, labels=[0, 1, 2], average=None, zero_division=0)
    rows += [row(task, data.name, data.lang, split, f"recall_{label}", value, int((data.labels == c).sum()))
             for c, (label, value) in enumerate(zip(LABELS, per_class))]
    bound, bias = best_biases(log_probs, data.labels, metric)
    rows.append(row(task + ", best per-class bias chosen on this set", data.name, data.lang, split, metric, bound, len(data)))
    matrix = confusion_matrix(data.labels, predicted, labels=[0, 1, 2]).tolist()
    return rows, {"confusion_rows_true_columns_predicted": matrix, "best_bias": dict(zip(LABELS, bias))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sentiment_headroom", description=__doc__.splitlines()[0])
    parser.add_argument("--precision", nargs="+", default=["auto", "fp32"], choices=("auto", "fp32", "bf16", "int8"))
    args = parser.parse_args(argv)
    if not (DATA / "sentiment_xlmt_umsab_en_de").is_dir():
        print(f"bench/sentiment_headroom.py: labelled data not found under {DATA}; set RESONANZ_DATA. Nothing evaluated.")
        return 2
    started = time.perf_counter()
    sets = ((read_tweeteval_val(DATA), "macro_recall", "val"), (read_umsab(DATA, "german", "test"), "macro_f1", "test"))
    rows: list[dict] = []
    details: dict[str, dict] = {}
    versions = {}
    for precision in args.precision:
        model = FineTunedSentimentModel(precision=precision)
        versions[precision] = model.model_version
        for data, metric, split in sets:
            found, detail = headroom_rows(model, data, metric, split)
            rows += found
            details[f"{data.name} ({model.precision})"] = detail
    for name, detail in details.items():
        print(f"{name}: confusion (rows true, columns predicted: {', '.join(LABELS)}) {detail['confusion_rows_true_columns_predicted']}, "
              f"best biases {detail['best_bias']}")
    print_rows(rows)
    write_results(RESULTS, rows, sets=details, sentiment_models=versions,
                  seconds=round(time.perf_counter() - started, 1), machine=machine_info())
    return 0


if __name__ == "__main__":
    sys.exit(main())
