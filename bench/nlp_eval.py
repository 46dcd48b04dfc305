"""Quality of the enrich models on real labelled EN and DE data; writes bench/results/nlp_eval.json.

Sentiment: the shipped model (e5 head blended with the n-gram model) on TweetEval validation
(macro-recall, the SemEval-2017 metric), UMSAB EN/DE test and the GermEval-2017 diachronic
test tweets; VADER as an EN baseline. Language id: accuracy on the EN/DE tweets of the same
sets. Entities (bench/eval_ner.py): WNUT-17 dev and GermEval-2014 held out. Sentiment toward
each brand (bench/eval_targeted.py) and purchase intent (bench/eval_intent.py) as well.
Reads /work/shared/data (or $RESONANZ_DATA) and says so when it is absent.
Usage: python -m bench.nlp_eval
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import f1_score, recall_score

BENCH = Path(__file__).resolve().parent
from bench.eval_intent import intent_rows  # noqa: E402
from bench.eval_ner import entity_rows as ner_rows  # noqa: E402
from bench.eval_targeted import targeted_rows  # noqa: E402
from bench.language_labels import adjudicated_languages, language_correct  # noqa: E402
from bench.machine import machine_info
from bench.rows import print_rows, row, write_results  # noqa: E402
from nlp.e5_sentiment import FineTunedSentimentModel  # noqa: E402
from nlp.language import LanguageDetector  # noqa: E402
from nlp.sentiment import LexicalHead, SentimentHead, SentimentModel  # noqa: E402
from nlp.sentiment_data import (  # noqa: E402
    LABELS,
    LabelledTexts,
    read_germeval_docs,
    read_tweeteval_val,
    read_umsab,
)
from nlp.train_sentiment import cached_embedder  # noqa: E402

DATA = Path(os.environ.get("RESONANZ_DATA", "/work/shared/data"))
RESULTS = BENCH / "results" / "nlp_eval.json"
SPLITS = {"tweeteval_val": "val", "umsab_en_test": "test", "umsab_de_test": "test", "germeval2017_test_dia_tweets": "test_dia"}


FROZEN = "sentiment (frozen e5 mode)"


def sentiment_rows(model: SentimentModel, head: SentimentHead, finetuned: FineTunedSentimentModel, sets: list[LabelledTexts]) -> list[dict]:
    """Rows for the default fine-tuned model ("sentiment") and the frozen-e5 mode (from cached embeddings)."""
    embed = cached_embedder(model)
    lexical = LexicalHead.load(model.lexical_path)  # the frozen mode blends the e5 head with n-grams
    rows = []
    for data in sets:
        probs = head.probabilities(embed(data), data.lang)
        frozen = lexical.blend(probs, lexical.log_probabilities(data.texts, data.lang), data.lang).argmax(axis=1)
        for task, predicted in (("sentiment", finetuned.probabilities(data.texts, data.lang).argmax(axis=1)), (FROZEN, frozen)):
            split = SPLITS[data.name]
            rows.append(row(task, data.name, data.lang, split, "macro_f1", f1_score(data.labels, predicted, average="macro"), len(data)))
            if data.name == "tweeteval_val":
                rows.append(row(task, data.name, "en", "val", "macro_recall", recall_score(data.labels, predicted, average="macro"), len(data)))
    return rows


def vader_rows(sets: list[LabelledTexts]) -> list[dict]:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()
    rows = []
    for data in sets:
        # The thresholds VADER's authors recommend for three classes.
        compound = np.array([analyzer.polarity_scores(t)["compound"] for t in data.texts])
        predicted = np.where(compound >= 0.05, 2, np.where(compound <= -0.05, 0, 1))
        split = SPLITS[data.name]
        metric, scorer = ("macro_recall", recall_score) if data.name == "tweeteval_val" else ("macro_f1", f1_score)
        rows.append(row("sentiment (VADER baseline)", data.name, "en", split, metric, scorer(data.labels, predicted, average="macro"), len(data)))
    return rows


def language_rows(sets: list[LabelledTexts]) -> list[dict]:
    """Accuracy against the collection's label and against per-tweet labels: the shipped detector,
    without the wider Lingua step, without Lingua at all, and the lite model alone."""
    rows = []
    gold = {data.name: adjudicated_languages(data) for data in sets}
    variants = (
        ("language", LanguageDetector()),
        ("language (Lingua between EN and DE only)", LanguageDetector(others=())),
        ("language (prior, no Lingua)", LanguageDetector(second_opinion=False)),
        ("language (lite model alone)", LanguageDetector(prior=1.0, second_opinion=False)),
    )
    for task, detector in variants:
        for data in sets:
            guesses = [detector.detect(text).lang for text in data.texts]
            split = SPLITS[data.name]
            rows.append(row(task, data.name, data.lang, split, "accuracy", np.mean([g == data.lang for g in guesses]), len(data)))
            judged = [(g, t) for g, t in zip(guesses, gold[data.name]) if t != "none"]
            rows.append(row(task, data.name, data.lang, split, "accuracy_per_tweet_labels",
                            np.mean([language_correct(g, t) for g, t in judged]), len(judged)))
            rows.append(row(task, data.name, data.lang, split, "share_und", np.mean([g == "und" for g in guesses]), len(data)))
    return rows


def main() -> int:
    if not (DATA / "sentiment_xlmt_umsab_en_de").is_dir():
        print(f"bench/nlp_eval.py: labelled data not found under {DATA}; set RESONANZ_DATA. Nothing evaluated.")
        return 2
    started = time.perf_counter()
    model = SentimentModel()
    head = SentimentHead.load(model.head_path)
    tweeteval = read_tweeteval_val(DATA)
    umsab_en, umsab_de = read_umsab(DATA, "english", "test"), read_umsab(DATA, "german", "test")
    germeval = read_germeval_docs(DATA, "test_dia_docs.tsv", twitter_only=True)
    finetuned = FineTunedSentimentModel()  # the default mode; loaded once for every row below
    rows = sentiment_rows(model, head, finetuned, [tweeteval, umsab_en, umsab_de, germeval])
    rows += vader_rows([tweeteval, umsab_en])
    rows += language_rows([tweeteval, umsab_en, umsab_de, germeval])
    rows += ner_rows(DATA)
    rows += targeted_rows(DATA, finetuned)
    rows += [{**r, "task": r["task"] + " (frozen e5 mode)"} for r in targeted_rows(DATA)]
    rows += intent_rows()
    print_rows(rows)
    write_results(
        RESULTS,
        rows,
        sentiment_model=finetuned.model_version,
        sentiment_model_frozen_mode=model.model_version,
        labels=list(LABELS),
        notes="NER: WNUT-17 dev (EN); GermEval-2014 held-out 20% of its dev split (DE, the model trained on 70%). "
        "Intent: 5-fold CV on the hand-labelled set in nlp/data/intent.",
        seconds=round(time.perf_counter() - started, 1),
        machine=machine_info(),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
