"""Sentiment toward each target in a post: nlp.targeted vs the post-level baseline, DE and EN.

DE: GermEval-2017 dev opinions (Deutsche Bahn customer talk) with gold target spans and
polarities, from $RESONANZ_DATA/conversations_germeval2017_db_de/source/dev.xml; only documents
with at least two distinct explicit targets, since a single target keeps the post sentiment.
EN: customer tweets from TWCS ($RESONANZ_DATA/conversations_twcs_en/tweets.csv) that name two
companies, labelled per company by this project (bench/data/twcs_targets_en.tsv; the rule is in
bench/data/PROVENANCE.md).
Baseline: every target gets the post's sentiment (what nlp/pipeline.py did before).
Caveat: the DE sentiment head was trained on GermEval-2017 dev *document* labels (weight 0.25),
so the DE baseline has seen these posts' post-level labels; the targets' labels were never used.
Usage: python -m bench.eval_targeted   (writes bench/results/eval_targeted.json)
"""

from __future__ import annotations

import csv
import hashlib
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from defusedxml import ElementTree
from sklearn.metrics import accuracy_score, f1_score

from bench.machine import machine_info
from bench.rows import print_rows, row, write_results
from nlp.sentiment import SentimentModel, SentimentResult
from nlp.targeted import PostSentimentModel, TargetedSentiment
from nlp.text import MAX_CHARS

BENCH = Path(__file__).resolve().parent
DATA = Path(os.environ.get("RESONANZ_DATA", "/work/shared/data"))
RESULTS = BENCH / "results" / "eval_targeted.json"
TWCS_LABELS = BENCH / "data" / "twcs_targets_en.tsv"
GERMEVAL_XML = Path("conversations_germeval2017_db_de") / "source" / "dev.xml"
TWCS_TWEETS = Path("conversations_twcs_en") / "tweets.csv"


@dataclass(frozen=True, slots=True)
class TargetedPost:
    """A post with gold sentiment labels for some of its target spans."""

    post_id: str
    text: str
    lang: str
    spans: list[tuple[int, int]]
    gold: list[str]


class CachedEmbeddings(SentimentModel):
    """The shipped sentiment model with an on-disk embedding cache, so reruns take seconds."""

    def __init__(self) -> None:
        super().__init__()
        self._cache_dir = Path(os.environ.get("RESONANZ_E5_CACHE", Path(tempfile.gettempdir()) / "resonanz-e5-cache")) / "texts"
        self._cache_dir.mkdir(parents=True, exist_ok=True)

    def embed(self, texts: list[str]) -> np.ndarray:
        """Return embeddings, computing only the texts not cached yet."""
        keys = [hashlib.sha256(t.encode("utf-8", "surrogatepass")).hexdigest()[:20] for t in texts]
        missing = [i for i, k in enumerate(keys) if not (self._cache_dir / f"{k}.npy").exists()]
        if missing:
            vectors = super().embed([texts[i] for i in missing])
            for i, vector in zip(missing, vectors):
                np.save(self._cache_dir / f"{keys[i]}.npy", vector)
        return np.stack([np.load(self._cache_dir / f"{k}.npy") for k in keys]) if keys else np.zeros((0, 384), np.float32)


def germeval_posts(data_dir: Path, min_targets: int = 2) -> list[TargetedPost]:
    """Return GermEval-2017 dev documents with >= `min_targets` distinct explicit target spans (offsets verified)."""
    root = ElementTree.parse(data_dir / GERMEVAL_XML).getroot()
    posts = []
    for doc in root.iter("Document"):
        text = doc.findtext("text") or ""
        by_span: dict[tuple[int, int], str] = {}
        for opinion in doc.iter("Opinion"):
            start, end = int(opinion.get("from", 0)), int(opinion.get("to", 0))
            # Implicit opinions (target NULL, 0..0) and the ~7% whose offsets miss the text are skipped.
            if end > start and end <= MAX_CHARS and text[start:end] == opinion.get("target"):
                by_span.setdefault((start, end), opinion.get("polarity", ""))
        if len(by_span) >= min_targets:
            spans = sorted(by_span)
            posts.append(TargetedPost(doc.get("id", ""), text, "de", spans, [by_span[s] for s in spans]))
    return posts


def twcs_posts(data_dir: Path, labels_path: Path = TWCS_LABELS) -> list[TargetedPost]:
    """Return the hand-labelled TWCS tweets; each target is the first occurrence of its text."""
    with (data_dir / TWCS_TWEETS).open(encoding="utf-8", newline="") as handle:
        texts = {row["tweet_id"]: row["text"] for row in csv.DictReader(handle)}
    grouped: dict[str, list[tuple[tuple[int, int], str]]] = {}
    with labels_path.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            start = texts[row["tweet_id"]].index(row["target"])
            grouped.setdefault(row["tweet_id"], []).append(((start, start + len(row["target"])), row["label"]))
    return [
        TargetedPost(tweet_id, texts[tweet_id], "en", [s for s, _ in items], [g for _, g in items])
        for tweet_id, items in grouped.items()
    ]


def post_sentiments(posts: list[TargetedPost], model: PostSentimentModel) -> list[SentimentResult | None]:
    """Return each post's own sentiment, with one model call per language."""
    by_lang: dict[str, list[int]] = {}
    for i, post in enumerate(posts):
        by_lang.setdefault(post.lang, []).append(i)
    results: list[SentimentResult | None] = [None] * len(posts)
    for lang, indices in by_lang.items():
        for i, result in zip(indices, model.predict([posts[i].text[:MAX_CHARS] for i in indices], lang)):
            results[i] = result
    return results


def score_posts(posts: list[TargetedPost], model: SentimentModel) -> dict:
    """Return per-target gold, baseline and targeted labels, and which posts mix polarities."""
    targeted = TargetedSentiment(model)
    gold, base, ours, mixed = [], [], [], []
    for post, post_result in zip(posts, post_sentiments(posts, model)):
        found = targeted.predict(post.text[:MAX_CHARS], post.lang, post.spans, post_result)
        gold += post.gold
        base += [post_result.label if post_result else "neutral"] * len(post.spans)
        ours += [r.label if r else "neutral" for r in found]
        mixed += [len(set(post.gold)) > 1] * len(post.spans)
    return {"gold": gold, "baseline": base, "targeted": ours, "mixed": mixed}


def metric_rows(dataset: str, lang: str, split: str, scored: dict) -> list[dict]:
    """Return macro-F1 and accuracy rows for the baseline and the targeted model, all and mixed posts."""
    rows = []
    gold = np.array(scored["gold"])
    mixed = np.array(scored["mixed"])
    for subset, mask in ((dataset, np.ones(len(gold), bool)), (dataset + "_mixed_polarity", mixed)):
        for task, key in (("targeted sentiment (post-level baseline)", "baseline"), ("targeted sentiment", "targeted")):
            predicted = np.array(scored[key])[mask]
            labels = ["negative", "neutral", "positive"]
            rows.append(row(task, subset, lang, split, "macro_f1", f1_score(gold[mask], predicted, labels=labels, average="macro", zero_division=0), int(mask.sum())))
            rows.append(row(task, subset, lang, split, "accuracy", accuracy_score(gold[mask], predicted), int(mask.sum())))
    return rows


def targeted_rows(data_dir: Path = DATA, model: SentimentModel | None = None) -> list[dict]:
    """Return bench/nlp_eval.py-style rows for DE (GermEval-2017 dev) and EN (TWCS) targets."""
    model = model or CachedEmbeddings()
    rows = metric_rows("germeval2017_dev_opinions", "de", "dev", score_posts(germeval_posts(data_dir), model))
    rows += metric_rows("twcs_two_brands_hand_labelled", "en", "all", score_posts(twcs_posts(data_dir), model))
    return rows


def main() -> int:
    if not (DATA / GERMEVAL_XML).is_file() or not (DATA / TWCS_TWEETS).is_file():
        print(f"bench/eval_targeted.py: labelled data not found under {DATA}; set RESONANZ_DATA. Nothing evaluated.")
        return 2
    started = time.perf_counter()
    model = CachedEmbeddings()
    rows = targeted_rows(DATA, model)
    print_rows(rows)
    write_results(
        RESULTS,
        rows,
        sentiment_model=model.model_version,
        notes="Per-target labels; baseline = post sentiment on every target. DE head saw GermEval dev document labels (weight 0.25) in training.",
        seconds=round(time.perf_counter() - started, 1),
        machine=machine_info(),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
