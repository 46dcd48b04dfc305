"""Would a richer combiner over the default sentiment model's parts reach TweetEval's 0.74? Writes bench/results/sentiment_stacking.json.

The shipped model blends the fine-tuned head and the n-gram model with three numbers per
language, fitted on 900 calibration rows. 29,427 SemEval-2017 pool tweets are in none of the
fine-tuning, calibration or evaluation rows, so they can train a combiner with more inputs, if
every input is out-of-sample on them:

* the fine-tuned head's calibrated log-probabilities (the encoder never saw these tweets);
* the n-gram model's log-probabilities, from FOLDS models each trained without one fold of them;
* a nearest-neighbour vote: the class-balanced, similarity-weighted vote of the K pool tweets
  (fit + unseen) whose pooled encoder states are closest, each tweet left out of its own vote;
* surface features (links, handles, hashtags, length, "!", "?", emoji, RT, capitals, digits, quotes).

Combiners: class-balanced multinomial logistic regression at several C. The calibration rows
choose among them (lowest log-loss) before TweetEval validation and UMSAB English test are read.
English only; the encoder runs at the product's `e5_precision = "auto"`. About 12 minutes on 2 cores.

Reads /work/shared/data (or $RESONANZ_DATA) and says so when it is absent.
Usage: python -m bench.sentiment_stacking
"""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, log_loss, recall_score
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from bench.machine import machine_info
from bench.rows import print_rows, row, write_results
from nlp.e5_sentiment import FineTunedSentimentModel, PooledStates, pooled_logits
from nlp.e5_torch import require_torch
from nlp.sentiment import LexicalHead
from nlp.sentiment_data import LabelledTexts, read_semeval_pool, read_tweeteval_val, read_umsab, tweet_key, without
from nlp.train_sentiment import LEXICAL_RECIPE, UMSAB_EN_WEIGHT, _fit_lexical, _log_softmax, build_datasets

DATA = Path(os.environ.get("RESONANZ_DATA", "/work/shared/data"))
RESULTS = Path(__file__).resolve().parent / "results" / "sentiment_stacking.json"
SEED = 13
FOLDS = 5
NEIGHBOURS, SHARPNESS = 50, 0.05  # vote weight exp((similarity - 1) / SHARPNESS)
GRID = (0.01, 0.1, 1.0)
EMOJI = re.compile("[\U0001F300-\U0001FAFF\u2600-\u27BF]")
EVALUATED = ("calib", "val", "umsab_test")


def surface_features(texts: list[str]) -> np.ndarray:
    """Return 11 surface features per text."""
    rows = []
    for text in texts:
        words = text.split()
        rows.append([
            "http" in text, text.count("@"), text.count("#"), np.log1p(len(words)), "!" in text, "?" in text,
            bool(EMOJI.search(text)), text.startswith("RT"),
            sum(w.isupper() and len(w) > 1 for w in words) / max(1, len(words)), bool(re.search(r"\d", text)), '"' in text,
        ])
    return np.array(rows, dtype=np.float32)


def neighbour_votes(bank: np.ndarray, bank_labels: np.ndarray, queries: np.ndarray, bank_offset: int | None = None) -> np.ndarray:
    """Return class-balanced log vote shares (n, 3) of each query's NEIGHBOURS nearest bank rows by cosine.

    Rows must be unit length. With `bank_offset`, query i is bank row bank_offset + i and is left
    out of its own vote."""
    prior = np.bincount(bank_labels, minlength=3) / len(bank_labels)
    out = np.zeros((len(queries), 3), dtype=np.float32)
    for start in range(0, len(queries), 2000):
        similarity = queries[start : start + 2000] @ bank.T
        if bank_offset is not None:
            own = np.arange(similarity.shape[0])
            similarity[own, bank_offset + start + own] = -np.inf
        nearest = np.argpartition(-similarity, NEIGHBOURS, axis=1)[:, :NEIGHBOURS]
        weight = np.exp((np.take_along_axis(similarity, nearest, 1) - 1) / SHARPNESS)
        votes = np.stack([(weight * (bank_labels[nearest] == c)).sum(1) for c in range(3)], axis=1)
        shares = (votes / votes.sum(1, keepdims=True) + 0.02) / prior
        out[start : start + 2000] = np.log(shares / shares.sum(1, keepdims=True))
    return out


def encoded(model: FineTunedSentimentModel, data: LabelledTexts) -> tuple[np.ndarray, np.ndarray]:
    """Return the fine-tuned head's calibrated log-probabilities and the pooled states of `data`."""
    encoder = model._load()[0]
    kept = PooledStates(max_entries=4 * len(data) + 10)
    with require_torch().inference_mode():
        logits = pooled_logits(encoder, data.texts, lang=data.lang, states=kept)
    states = np.stack([kept.lookup(data.lang, text) for text in data.texts]).astype(np.float32)
    return _log_softmax(logits / float(encoder.fields["temperature"][0])), states


def cross_fitted_ngrams(pool: LabelledTexts, unseen: LabelledTexts, umsab_en: LabelledTexts) -> np.ndarray:
    """Return the n-gram model's log-probabilities on `unseen`, each fold scored by a model
    trained on the pool without that fold (and UMSAB EN, as the shipped model is)."""
    fold = np.random.default_rng(0).integers(0, FOLDS, len(unseen))
    keys = [tweet_key(t) for t in unseen.texts]
    pool_keys = [tweet_key(t) for t in pool.texts]
    out = np.zeros((len(unseen), 3), dtype=np.float32)
    for k in range(FOLDS):
        held = {keys[i] for i in np.flatnonzero(fold == k)}
        keep = [i for i, key in enumerate(pool_keys) if key not in held]
        rest = LabelledTexts("pool_without_fold", [pool.texts[i] for i in keep], pool.labels[keep], "en")
        with threadpool_limits(2):
            coef, intercept, idf = _fit_lexical([umsab_en, rest], [UMSAB_EN_WEIGHT, 1.0], SEED, *LEXICAL_RECIPE["en"])
        rows = np.flatnonzero(fold == k)
        fold_model = LexicalHead(("en",), coef[None], intercept[None], idf[None], np.zeros(1, np.float32), np.ones(1, np.float32))
        out[rows] = fold_model.log_probabilities([unseen.texts[i] for i in rows], "en")
        print(f"bench.sentiment_stacking: n-gram fold {k + 1}/{FOLDS}", flush=True)
    return out


def scores(log_probs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Macro-recall, macro-F1 and log-loss."""
    predicted = log_probs.argmax(1)
    return {
        "macro_recall": float(recall_score(labels, predicted, average="macro")),
        "macro_f1": float(f1_score(labels, predicted, average="macro")),
        "log_loss": float(log_loss(labels, np.exp(_log_softmax(log_probs)), labels=[0, 1, 2])),
    }


def combiner_rows(inputs: dict[str, dict[str, np.ndarray]], labels: dict[str, np.ndarray], shipped: dict[str, np.ndarray]) -> tuple[list[dict], str]:
    """Fit every combiner on the unseen rows; return rows for the evaluated sets and the calibration rows' choice."""
    variants = {
        "head + n-grams": ("head", "ngrams"),
        "head + n-grams + surface": ("head", "ngrams", "surface"),
        "head + n-grams + neighbours": ("head", "ngrams", "neighbours"),
        "head + n-grams + neighbours + surface": ("head", "ngrams", "neighbours", "surface"),
        "head + n-grams + pooled state": ("head", "ngrams", "states"),
    }
    results = {"shipped blend": {name: scores(shipped[name], labels[name]) for name in EVALUATED}}
    for variant, parts in variants.items():
        train = np.hstack([inputs["unseen"][p] for p in parts])
        scaler = StandardScaler().fit(train)
        balance = (len(labels["unseen"]) / (3 * np.bincount(labels["unseen"], minlength=3)))[labels["unseen"]]
        for c_value in GRID:
            head = LogisticRegression(C=c_value, max_iter=5000).fit(scaler.transform(train), labels["unseen"], sample_weight=balance)
            results[f"{variant}, C={c_value}"] = {
                name: scores(head.predict_log_proba(scaler.transform(np.hstack([inputs[name][p] for p in parts]))), labels[name])
                for name in EVALUATED
            }
    chosen = min((k for k in results if k != "shipped blend"), key=lambda k: results[k]["calib"]["log_loss"])
    rows = []
    for system, by_set in results.items():
        task = f"sentiment combiner: {system}" + (" (the calibration rows' choice)" if system == chosen else "")
        for name, dataset, metric in (("calib", "semeval2017_calibration_rows", "log_loss"), ("calib", "semeval2017_calibration_rows", "macro_recall"),
                                      ("val", "tweeteval", "macro_recall"), ("umsab_test", "umsab_english", "macro_f1")):
            rows.append(row(task, dataset, "en", "test" if name == "umsab_test" else ("validation" if name == "val" else "calibration"),
                            metric, by_set[name][metric], len(labels[name])))
    return rows, chosen


def main() -> int:
    if not (DATA / "sentiment_semeval2017_en_train").is_dir():
        print(f"bench/sentiment_stacking.py: labelled data not found under {DATA}; set RESONANZ_DATA. Nothing evaluated.")
        return 2
    started = time.perf_counter()
    sets = build_datasets(DATA, SEED)
    val = read_tweeteval_val(DATA)
    pool = read_semeval_pool(DATA, [val, sets["en_calib"]])
    named = {
        "unseen": without(without(pool, sets["en_semeval"]), sets["en_umsab"]),
        "fit": sets["en_semeval"], "val": val, "calib": sets["en_calib"], "umsab_test": read_umsab(DATA, "english", "test"),
    }
    model = FineTunedSentimentModel()
    lexical = model._load()[1]
    inputs: dict[str, dict[str, np.ndarray]] = {}
    shipped: dict[str, np.ndarray] = {}
    fields = model._load()[0].fields
    weight, temperature = float(fields["lexical_weight"][0]), float(fields["blend_temperature"][0])
    for name, data in named.items():
        head, states = encoded(model, data)
        inputs[name] = {"head": head, "states": states, "surface": surface_features(data.texts),
                        "ngrams": lexical.log_probabilities(data.texts, "en")}
        shipped[name] = ((1 - weight) * head + weight * inputs[name]["ngrams"]) / temperature
        print(f"bench.sentiment_stacking: encoded {name} ({len(data)})", flush=True)
    inputs["unseen"]["ngrams"] = cross_fitted_ngrams(pool, named["unseen"], sets["en_umsab"])
    centre = np.vstack([inputs["unseen"]["states"], inputs["fit"]["states"]]).mean(axis=0)

    def unit(states: np.ndarray) -> np.ndarray:
        centred = states - centre
        return centred / np.linalg.norm(centred, axis=1, keepdims=True)

    bank = unit(np.vstack([inputs["unseen"]["states"], inputs["fit"]["states"]]))
    bank_labels = np.concatenate([named["unseen"].labels, named["fit"].labels])
    for name in ("unseen", *EVALUATED):
        inputs[name]["neighbours"] = neighbour_votes(bank, bank_labels, unit(inputs[name]["states"]), 0 if name == "unseen" else None)
    rows, chosen = combiner_rows(inputs, {name: data.labels for name, data in named.items()}, shipped)
    print_rows(rows)
    write_results(
        RESULTS, rows,
        chosen=chosen, sentiment_model=model.model_version,
        unseen_rows=len(named["unseen"]), unseen_label_counts=np.bincount(named["unseen"].labels, minlength=3).tolist(),
        notes="Combiners are trained on SemEval-2017 pool tweets outside every fine-tuning, calibration and evaluation row; "
              "the calibration rows choose (lowest log-loss) before the test sets are read.",
        seconds=round(time.perf_counter() - started, 1),
        machine=machine_info(),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
