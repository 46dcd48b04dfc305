"""Train and cross-validate the EN/DE purchase-intent model; writes nlp/models/intent/intent_linear.npz.

Run `python -m nlp.train_intent [DATA_DIR] [--labels CSV] [--out DIR] [--seed 13] [--weak]`. The
training data is the hand-labelled set kept in the repo (nlp/data/intent/intent_labelled.csv), so
DATA_DIR is only read with --weak (weak German rows from GermEval-2017, which did not help in
cross-validation and are not in the shipped model).
Prints stratified 5-fold cross-validated macro-F1 and per-class F1 per language for the model,
a majority-class baseline and the lexicon-only rule baseline. About 1,000 posts: small data,
read the numbers with their spread in mind.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.model_selection import StratifiedKFold

from nlp.intent import (
    LABELS,
    LANGS,
    MODEL_PATH,
    STATES_MODEL_PATH,
    IntentFeatures,
    IntentWeights,
    normalise,
)
from nlp.intent_lexicon import rule_label
from nlp.train_sentiment import fitted_logistic

LABELLED_PATH = Path(__file__).with_name("data") / "intent" / "intent_labelled.csv"
# Chosen by 5-fold CV on the labelled set over C in {1, 3, 10} (see the model card);
# the CV figures printed are therefore slightly optimistic.
C_VALUE = 10.0
FOLDS = 5
# Weight of one weakly labelled GermEval row relative to one hand-labelled post.
WEAK_WEIGHT = 0.3
# The sentiment encoder's pooled states join the features standardised and multiplied by this:
# chosen among 0.05 and 0.1 by the mean of four fold splits (bench.eval_intent --encoder-states).
STATE_SCALE = 0.05


@dataclass(frozen=True, slots=True)
class LabelledIntent:
    """The labelled posts, normalised, with label indices and their sampling strata."""

    ids: list[str]
    langs: np.ndarray
    texts: list[str]
    labels: np.ndarray
    strata: list[str]

    def __len__(self) -> int:
        return len(self.texts)


def read_labelled(path: Path = LABELLED_PATH) -> LabelledIntent:
    """Read the labelled CSV (id, source, lang, stratum, text, label, note)."""
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return LabelledIntent(
        [r["id"] for r in rows],
        np.array([r["lang"] for r in rows]),
        [normalise(r["text"]) for r in rows],
        np.array([LABELS.index(r["label"]) for r in rows]),
        [r["stratum"] for r in rows],
    )


def read_weak_de(data_dir: Path, exclude: set[str]) -> LabelledIntent | None:
    """Return weakly labelled German posts from GermEval-2017 gold sentiment, or None if absent.

    Deutsche-Bahn posts (<= 400 chars) that the GermEval annotators marked relevant and
    negative are taken as `complaint`, irrelevant neutral ones as `none`. Both are rough (a
    negative post may be churn, an irrelevant one an ad), hence the low WEAK_WEIGHT; posts in the
    hand-labelled set are left out so cross-validation never scores a weak twin of a test post.
    """
    sources = (
        (data_dir / "conversations_germeval2017_db_de" / "posts.csv", "germeval17_dev", "doc_id", ","),
        (data_dir / "sentiment_germeval2017_de" / "test_dia_docs.tsv", "germeval17_test_dia", "id", "\t"),
    )
    if not all(path.exists() for path, *_ in sources):
        return None
    ids, texts, labels = [], [], []
    for path, prefix, id_column, delimiter in sources:
        with path.open(encoding="utf-8", newline="") as handle:
            quoting = csv.QUOTE_MINIMAL if delimiter == "," else csv.QUOTE_NONE
            for row in csv.DictReader(handle, delimiter=delimiter, quoting=quoting):
                post_id = f"{prefix}:{row[id_column]}"
                relevant, sentiment = row["relevance"] == "true", row["sentiment"]
                label = "complaint" if relevant and sentiment == "negative" else "none" if not relevant and sentiment == "neutral" else None
                if label and post_id not in exclude and len(row["text"]) <= 400 and post_id not in ids:
                    ids.append(post_id)
                    texts.append(normalise(row["text"]))
                    labels.append(LABELS.index(label))
    return LabelledIntent(ids, np.array(["de"] * len(ids)), texts, np.array(labels), ["weak"] * len(ids))


def featurise(data: LabelledIntent, features: IntentFeatures) -> sp.csr_matrix:
    """Return the feature matrix of all rows, each row featurised in its own language."""
    parts, order = [], []
    for lang in LANGS:
        rows = np.flatnonzero(data.langs == lang)
        if len(rows):
            parts.append(features.transform([data.texts[i] for i in rows], lang))
            order.append(rows)
    stacked = sp.vstack(parts, format="csr")
    inverse = np.empty(len(data), dtype=int)
    inverse[np.concatenate(order)] = np.arange(len(data))
    return stacked[inverse]


def encoder_states(texts: list[str], sentiment_path: Path) -> np.ndarray:
    """Return the fine-tuned sentiment encoder's mean-pooled final states (n, hidden) of `texts`,
    in float32 (the arithmetic it was trained in), as its pass computes them in enrich."""
    from nlp.e5_sentiment import PooledStates, pooled_logits  # noqa: PLC0415 - needs PyTorch
    from nlp.e5_torch import load_adapter_file, require_torch  # noqa: PLC0415

    model = load_adapter_file(sentiment_path, "fp32")
    kept = PooledStates(max_entries=2 * len(texts) + 1)
    with require_torch().inference_mode():
        pooled_logits(model, texts, states=kept, lang="any")
    return np.stack([kept.lookup("any", text) for text in texts])


def scaled_states(states: np.ndarray, scale: float = STATE_SCALE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the states standardised and multiplied by `scale`, with their mean and std."""
    mean, std = states.mean(axis=0), states.std(axis=0) + 1e-6
    return (states - mean) / std * scale, mean, std


def with_states(x: sp.csr_matrix, scaled: np.ndarray | None) -> sp.csr_matrix:
    """Append the scaled states to the sparse features (unchanged without states)."""
    return x if scaled is None else sp.hstack([x, sp.csr_matrix(scaled)], format="csr")


def fit(
    x: sp.csr_matrix, y: np.ndarray, seed: int, c_value: float = C_VALUE,
    weak: tuple[sp.csr_matrix, np.ndarray] | None = None,
) -> LogisticRegression:
    """Fit a class-balanced multinomial logistic regression, with weak rows at WEAK_WEIGHT if given."""
    weights = np.ones(len(y))
    if weak is not None:
        x = sp.vstack([x, weak[0]], format="csr")
        y = np.concatenate([y, weak[1]])
        weights = np.concatenate([weights, np.full(len(weak[1]), WEAK_WEIGHT)])
    # Balance classes over the weighted pool: the metrics are macro-averaged and
    # buy/recommend/churn are rare.
    mass = np.bincount(y, weights=weights, minlength=len(LABELS))
    present = mass > 0
    weights = weights * (mass[present].sum() / (present.sum() * mass[y]))
    # At sklearn's default tolerance lbfgs stopped where the float32 states of another CPU moved it:
    # the states weights rebuilt on an Intel Xeon were up to 0.05 from those fitted on an AMD EPYC, and
    # both stopping points up to 0.3 from the optimum.
    # At SOLVER_TOL both land on the one optimum (nlp.train_sentiment.SOLVER_TOL).
    return fitted_logistic(c_value, seed, x, y, weights)


def dense_coef(clf: LogisticRegression) -> tuple[np.ndarray, np.ndarray]:
    """Return (coef, intercept) with one row per label in LABELS order, even if a fold lacked a class."""
    coef = np.zeros((len(LABELS), clf.coef_.shape[1]), dtype=np.float32)
    intercept = np.full(len(LABELS), -1e4, dtype=np.float32)
    coef[clf.classes_] = clf.coef_
    intercept[clf.classes_] = clf.intercept_
    return coef, intercept


def cross_validate(
    data: LabelledIntent, seed: int = 13, c_value: float = C_VALUE, folds: int = FOLDS,
    weak: LabelledIntent | None = None, features: IntentFeatures | None = None, states: np.ndarray | None = None,
    state_scale: float = STATE_SCALE,
) -> np.ndarray:
    """Return out-of-fold predicted label indices from stratified k-fold CV (strata: language x label).

    Weak rows, if given, join every training fold and are never scored. `states` (the rows'
    pooled encoder states) join the features as the states weights read them, scaled by `state_scale`.
    """
    features = features or IntentFeatures()
    x = with_states(featurise(data, features), None if states is None else scaled_states(states, state_scale)[0])
    weak_xy = (featurise(weak, features), weak.labels) if weak is not None and len(weak) else None
    strata = np.array([f"{lang}:{label}" for lang, label in zip(data.langs, data.labels)])
    predicted = np.zeros(len(data), dtype=int)
    for train, test in StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, strata):
        clf = fit(x[train], data.labels[train], seed, c_value, weak_xy)
        predicted[test] = clf.classes_[clf.decision_function(x[test]).argmax(axis=1)]
    return predicted


def held_out_fold(data: LabelledIntent, seed: int = 13, fold: int = 0, states: np.ndarray | None = None) -> dict:
    """Fit on all folds but one (hand-labelled rows only) and return per-language scores on that fold
    (with `states`, the states weights' recipe)."""
    x = with_states(featurise(data, IntentFeatures()), None if states is None else scaled_states(states)[0])
    strata = np.array([f"{lang}:{label}" for lang, label in zip(data.langs, data.labels)])
    train, test = list(StratifiedKFold(FOLDS, shuffle=True, random_state=seed).split(x, strata))[fold]
    clf = fit(x[train], data.labels[train], seed)
    predicted = clf.classes_[clf.decision_function(x[test]).argmax(axis=1)]
    langs = data.langs[test]
    return {lang: scores(data.labels[test][langs == lang], predicted[langs == lang]) for lang in LANGS}


def scores(gold: np.ndarray, predicted: np.ndarray) -> dict:
    """Return macro-F1, accuracy and per-class F1 over the labels present in gold or predictions."""
    per_class = f1_score(gold, predicted, labels=range(len(LABELS)), average=None, zero_division=0)
    return {
        "macro_f1": round(float(f1_score(gold, predicted, labels=range(len(LABELS)), average="macro", zero_division=0)), 4),
        "accuracy": round(float(np.mean(gold == predicted)), 4),
        "f1": {label: round(float(v), 4) for label, v in zip(LABELS, per_class)},
        "n": len(gold),
        "support": {label: int(np.sum(gold == i)) for i, label in enumerate(LABELS)},
    }


def evaluate(data: LabelledIntent, seed: int = 13, weak: LabelledIntent | None = None, states: np.ndarray | None = None) -> dict:
    """Return per-language CV scores of the model and of the majority and lexicon baselines (and of
    the states weights, given the rows' pooled encoder states)."""
    oof = cross_validate(data, seed, weak=weak)
    oof_states = cross_validate(data, seed, states=states) if states is not None else None
    lexicon = np.array([LABELS.index(rule_label(t, lang)) for t, lang in zip(data.texts, data.langs)])
    unsampled = np.array([s.endswith(":other") for s in data.strata])
    out: dict = {}
    for lang in LANGS:
        rows = data.langs == lang
        gold = data.labels[rows]
        majority = np.full(rows.sum(), np.bincount(gold).argmax())
        out[lang] = {
            "model_cv": scores(gold, oof[rows]),
            "majority": scores(gold, majority),
            "lexicon": scores(gold, lexicon[rows]),
        }
        if oof_states is not None:
            out[lang]["model_states_cv"] = scores(gold, oof_states[rows])
        # Posts drawn at random from the keyword-free stratum: closest to an unfiltered stream.
        other = rows & unsampled
        if other.any():
            out[lang]["model_cv_unsampled_stratum"] = scores(data.labels[other], oof[other])
            if oof_states is not None:
                out[lang]["model_states_cv_unsampled_stratum"] = scores(data.labels[other], oof_states[other])
    return out


def sentiment_file(out_dir: Path) -> Path:
    """Return the fine-tuned sentiment file the states weights read: `out_dir`'s, else the bundled one."""
    from nlp.e5_sentiment import FINETUNED_PATH  # noqa: PLC0415

    retrained = out_dir / FINETUNED_PATH.name
    return retrained if retrained.is_file() else FINETUNED_PATH


def train_states_weights(data: LabelledIntent, states: np.ndarray, seed: int, sentiment: Path) -> IntentWeights:
    """Fit on every labelled row with the scaled states; fold the scaling into the state weights."""
    from nlp.e5_shared import sentiment_digest  # noqa: PLC0415

    scaled, mean, std = scaled_states(states)
    clf = fit(with_states(featurise(data, IntentFeatures()), scaled), data.labels, seed)
    coef, intercept = dense_coef(clf)
    width = IntentFeatures().width
    state_coef = coef[:, width:] * STATE_SCALE / std
    return IntentWeights.from_dense(coef[:, :width], intercept - state_coef @ mean, state_coef, sentiment_digest(sentiment))


def train_intent(
    out_dir: Path, data_dir: Path | None, labels_path: Path = LABELLED_PATH, seed: int = 13, cross_validated: bool = True,
) -> dict:
    """Cross-validate (unless not `cross_validated`), then fit on every labelled row (plus weak rows),
    save the artefact, return metrics.

    With PyTorch, also the states weights (STATES_MODEL_PATH), on the sentiment file in `out_dir`
    if there is one, else the bundled one."""
    from nlp.e5_torch import torch_available  # noqa: PLC0415

    started = time.perf_counter()
    data = read_labelled(labels_path)
    weak = read_weak_de(data_dir, set(data.ids)) if data_dir is not None else None
    sentiment = sentiment_file(out_dir) if torch_available() else None
    states = encoder_states(list(data.texts), sentiment) if sentiment is not None else None
    metrics = evaluate(data, seed, weak, states) if cross_validated else {}
    features = IntentFeatures()
    weak_xy = (featurise(weak, features), weak.labels) if weak is not None else None
    clf = fit(featurise(data, features), data.labels, seed, weak=weak_xy)
    weights = IntentWeights.from_dense(*dense_coef(clf))
    path = out_dir / MODEL_PATH.name
    weights.save(path)
    metrics["rows"] = {lang: int(np.sum(data.langs == lang)) for lang in LANGS}
    metrics["weak_rows_de"] = {LABELS[i]: int(n) for i, n in enumerate(np.bincount(weak.labels, minlength=len(LABELS))) if n} if weak else 0
    metrics["artefact"] = {"path": str(path), "bytes": path.stat().st_size, "nonzero_columns": len(weights.columns)}
    if states is not None:
        states_path = out_dir / STATES_MODEL_PATH.name
        train_states_weights(data, states, seed, sentiment).save(states_path)
        metrics["states_artefact"] = {"path": str(states_path), "bytes": states_path.stat().st_size, "sentiment_file": str(sentiment),
                                      "state_scale": STATE_SCALE}
    else:
        metrics["states_artefact"] = "not trained: the states weights need PyTorch (the [hf] extra)"
    metrics["seed"] = seed
    metrics["c"] = C_VALUE
    metrics["seconds"] = round(time.perf_counter() - started, 1)
    return metrics


def print_table(metrics: dict) -> None:
    """Print macro-F1 and per-class F1 per language for the model and both baselines."""
    print(f"{'lang':<5}{'system':<36}{'macro_f1':>9}{'acc':>7}" + "".join(f"{label:>10}" for label in LABELS))
    for lang in LANGS:
        for system in ("model_cv", "model_states_cv", "model_cv_unsampled_stratum", "model_states_cv_unsampled_stratum", "lexicon", "majority"):
            if system not in metrics[lang]:
                continue
            s = metrics[lang][system]
            print(f"{lang:<5}{system:<36}{s['macro_f1']:>9.3f}{s['accuracy']:>7.3f}" + "".join(f"{s['f1'][label]:>10.3f}" for label in LABELS))
        support = metrics[lang]["model_cv"]["support"]
        print(f"{lang:<5}{'support':<36}{metrics[lang]['model_cv']['n']:>9}{'':>7}" + "".join(f"{support[label]:>10}" for label in LABELS))


def main(argv: list[str]) -> int:
    """Train from the command line and print the evaluation."""
    parser = argparse.ArgumentParser(prog="nlp.train_intent")
    parser.add_argument("data", nargs="?", default=os.environ.get("RESONANZ_DATA", "/work/shared/data"),
                        help="data folder with the GermEval-2017 files (read only with --weak)")
    parser.add_argument("--weak", action="store_true",
                        help="add weakly labelled German GermEval-2017 rows to training (no gain in CV; off by default)")
    parser.add_argument("--labels", type=Path, default=LABELLED_PATH)
    parser.add_argument("--out", type=Path, default=MODEL_PATH.parent)
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args(argv)
    if not args.labels.exists():
        print(f"labelled intent data not found at {args.labels}; pass --labels CSV")
        return 2
    data_dir: Path | None = Path(args.data) if args.weak else None
    if data_dir is not None and read_weak_de(data_dir, set()) is None:
        print(f"GermEval-2017 files not found under {data_dir}: training on the hand-labelled set only")
        data_dir = None
    metrics = train_intent(args.out, data_dir, args.labels, args.seed)
    print_table(metrics)
    print(json.dumps({k: metrics[k] for k in ("rows", "weak_rows_de", "artefact", "states_artefact", "seed", "c", "seconds")}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
