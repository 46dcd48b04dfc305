"""Quality of the enrich models on real labelled EN and DE data; writes bench/results/nlp_eval.json.

Sentiment: the shipped head (nlp/models/sentiment_e5_head.npz) on TweetEval validation
(macro-recall, the SemEval-2017 metric), UMSAB EN/DE test and the GermEval-2017 diachronic
test tweets; VADER as an EN baseline. Language id: accuracy on the EN/DE tweets of the same
sets. Entities: spaCy EN on WNUT-17 dev (exact-span micro-F1 after label mapping).
Reads /work/shared/data (or $RESONANZ_DATA) and says so when it is absent.
Usage: python -m bench.nlp_eval
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import f1_score, recall_score

BENCH = Path(__file__).resolve().parent
from bench.machine import machine_info  # noqa: E402

from nlp.entities import EntityExtractor  # noqa: E402
from nlp.language import LanguageDetector  # noqa: E402
from nlp.sentiment import LexicalHead, SentimentHead, SentimentModel  # noqa: E402
from nlp.sentiment_data import LABELS, LabelledTexts, read_germeval_docs, read_tweeteval_val, read_umsab  # noqa: E402
from nlp.train_sentiment import cached_embedder  # noqa: E402

DATA = Path(os.environ.get("RESONANZ_DATA", "/work/shared/data"))
RESULTS = BENCH / "results" / "nlp_eval.json"
SPLITS = {"tweeteval_val": "val", "umsab_en_test": "test", "umsab_de_test": "test", "germeval2017_test_dia_tweets": "test_dia"}
WNUT_LABELS = {"person": "PER", "location": "LOC", "corporation": "ORG", "group": "ORG",
               "product": "PRODUCT", "creative-work": "MISC"}


def sentiment_rows(model: SentimentModel, head: SentimentHead, sets: list[LabelledTexts]) -> list[dict]:
    embed = cached_embedder(model)
    lexical = LexicalHead.load(model.lexical_path)  # the shipped model blends the e5 head with n-grams
    rows = []
    for data in sets:
        probs = head.probabilities(embed(data), data.lang)
        predicted = lexical.blend(probs, lexical.log_probabilities(data.texts, data.lang), data.lang).argmax(axis=1)
        split = SPLITS[data.name]
        rows.append(_row("sentiment", data.name, data.lang, split, "macro_f1", f1_score(data.labels, predicted, average="macro"), len(data)))
        if data.name == "tweeteval_val":
            rows.append(_row("sentiment", data.name, "en", "val", "macro_recall", recall_score(data.labels, predicted, average="macro"), len(data)))
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
        rows.append(_row("sentiment (VADER baseline)", data.name, "en", split, metric, scorer(data.labels, predicted, average="macro"), len(data)))
    return rows


def language_rows(sets: list[LabelledTexts]) -> list[dict]:
    detector = LanguageDetector()
    rows = []
    for data in sets:
        guesses = [detector.detect(text).lang for text in data.texts]
        split = SPLITS[data.name]
        rows.append(_row("language", data.name, data.lang, split, "accuracy", np.mean([g == data.lang for g in guesses]), len(data)))
        rows.append(_row("language", data.name, data.lang, split, "share_und", np.mean([g == "und" for g in guesses]), len(data)))
    return rows


def read_conll(path: Path) -> list[tuple[str, list[tuple[int, int, str]]]]:
    """Return (text, gold spans) per sentence, tokens joined by single spaces."""
    sentences, tokens, tags = [], [], []
    for line in path.read_text(encoding="utf-8").splitlines() + [""]:
        if line.strip():
            token, tag = line.split("\t")[:2]
            tokens.append(token)
            tags.append(tag)
            continue
        if tokens:
            text, spans, offset, current = "", [], 0, None
            for token, tag in zip(tokens, tags):
                start = offset
                text += token + " "
                offset = len(text)
                if tag.startswith("B-"):
                    current = [start, start + len(token), WNUT_LABELS[tag[2:]]]
                    spans.append(current)
                elif tag.startswith("I-") and current is not None:
                    current[1] = start + len(token)
                else:
                    current = None
            sentences.append((text.rstrip(), [tuple(s) for s in spans]))
        tokens, tags = [], []
    return sentences


def entity_rows() -> list[dict]:
    sentences = read_conll(DATA / "ner_wnut17_en" / "emerging.dev.conll")
    found = EntityExtractor([]).extract([text for text, _ in sentences], "en")
    gold = {(i, *span) for i, (_, spans) in enumerate(sentences) for span in spans}
    pred = {(i, e.start_char, e.end_char, e.label) for i, spans in enumerate(found) for e in spans}
    hits = len(gold & pred)
    precision, recall = hits / max(len(pred), 1), hits / max(len(gold), 1)
    f1 = 2 * precision * recall / max(precision + recall, 1e-9)
    unlabelled = len({g[:3] for g in gold} & {p[:3] for p in pred}) / max(len(gold), 1)
    return [
        _row("entities", "wnut17", "en", "dev", "micro_f1", f1, len(sentences)),
        _row("entities", "wnut17", "en", "dev", "precision", precision, len(sentences)),
        _row("entities", "wnut17", "en", "dev", "recall", recall, len(sentences)),
        _row("entities", "wnut17", "en", "dev", "span_recall_any_label", unlabelled, len(sentences)),
    ]


def _row(task: str, dataset: str, lang: str, split: str, metric: str, value: float, n: int) -> dict:
    return {"task": task, "dataset": dataset, "lang": lang, "split": split, "metric": metric, "value": round(float(value), 4), "n": n}


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
    rows = sentiment_rows(model, head, [tweeteval, umsab_en, umsab_de, germeval])
    rows += vader_rows([tweeteval, umsab_en])
    rows += language_rows([tweeteval, umsab_en, umsab_de, germeval])
    rows += entity_rows()
    from bench.eval_targeted import targeted_rows

    rows += targeted_rows(DATA)
    print(f"{'task':<28}{'dataset':<34}{'lang':<5}{'split':<9}{'metric':<24}{'value':>7}{'n':>7}")
    for r in rows:
        print(f"{r['task']:<28}{r['dataset']:<34}{r['lang']:<5}{r['split']:<9}{r['metric']:<24}{r['value']:>7.3f}{r['n']:>7}")
    report = {
        "rows": rows,
        "sentiment_model": model.model_version,
        "labels": list(LABELS),
        "notes": "German NER is missing (blank spaCy + brand ruler only), so no DE entity row.",
        "seconds": round(time.perf_counter() - started, 1),
        "machine": machine_info(),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
