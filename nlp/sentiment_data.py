"""Readers for the labelled sentiment corpora used to train and evaluate the sentiment head."""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

LABELS: tuple[str, ...] = ("negative", "neutral", "positive")  # index = class id (TweetEval order)


@dataclass(frozen=True, slots=True)
class LabelledTexts:
    """Texts with class ids (0 negative, 1 neutral, 2 positive) and their language."""

    name: str
    texts: list[str]
    labels: np.ndarray
    lang: str

    def __len__(self) -> int:
        return len(self.texts)


def tweet_key(text: str) -> str:
    """Return the text with handles, URLs, case and punctuation removed, to spot the same tweet twice."""
    text = re.sub(r"@\w+", "@user", text.lower())
    return re.sub(r"[^a-z0-9]", "", re.sub(r"http\S*", "", text))


def without(data: LabelledTexts, held_out: LabelledTexts) -> LabelledTexts:
    """Return `data` minus the tweets that also occur in `held_out` (compared by `tweet_key`)."""
    seen = {tweet_key(t) for t in held_out.texts}
    keep = [i for i, t in enumerate(data.texts) if tweet_key(t) not in seen]
    return LabelledTexts(data.name + "_minus_" + held_out.name, [data.texts[i] for i in keep], data.labels[keep], data.lang)


def split_per_class(data: LabelledTexts, per_class: int, seed: int) -> tuple[LabelledTexts, LabelledTexts]:
    """Split off `per_class` random rows of each class (e.g. for calibration); return (rest, split)."""
    rng = np.random.default_rng(seed)
    picked = np.concatenate([rng.permutation(np.flatnonzero(data.labels == k))[:per_class] for k in range(3)])
    mask = np.zeros(len(data), dtype=bool)
    mask[picked] = True

    def subset(rows: np.ndarray, suffix: str) -> LabelledTexts:
        return LabelledTexts(data.name + suffix, [data.texts[i] for i in rows], data.labels[rows], data.lang)

    return subset(np.flatnonzero(~mask), "_fit"), subset(np.flatnonzero(mask), "_calib")


def read_tweeteval_style(folder: Path, split: str, name: str, lang: str) -> LabelledTexts:
    """Read `{split}_text.txt` + `{split}_labels.txt` (one item per line, aligned)."""
    texts = (folder / f"{split}_text.txt").read_text(encoding="utf-8").splitlines()
    labels = [int(x) for x in (folder / f"{split}_labels.txt").read_text(encoding="utf-8").split()]
    if len(texts) != len(labels):
        raise ValueError(f"{folder}/{split}: {len(texts)} texts but {len(labels)} labels")
    return LabelledTexts(name, texts, np.asarray(labels, dtype=np.int64), lang)


def read_umsab(data_dir: Path, language: str, split: str) -> LabelledTexts:
    """Read one split of XLM-T UMSAB (`language` is "english" or "german")."""
    lang = {"english": "en", "german": "de"}[language]
    folder = data_dir / "sentiment_xlmt_umsab_en_de" / language
    return read_tweeteval_style(folder, split, f"umsab_{lang}_{split}", lang)


def read_tweeteval_val(data_dir: Path) -> LabelledTexts:
    """Read the TweetEval sentiment validation split (EN)."""
    folder = data_dir / "sentiment_tweeteval_en"
    return read_tweeteval_style(folder, "val", "tweeteval_val", "en")


def read_semeval_train(data_dir: Path, per_class: int, seed: int) -> LabelledTexts:
    """Read SemEval-2017 4A EN training tweets minus TweetEval-val ones, deduped, `per_class` each."""
    path = data_dir / "sentiment_semeval2017_en_train" / "train.tsv"
    seen: set[str] = set()
    by_class: list[list[str]] = [[], [], []]
    with path.open(encoding="utf-8") as handle:
        next(handle)
        for line in handle:
            parts = line.rstrip("\n").split("\t", 4)
            if len(parts) != 5 or parts[3] == "1":
                continue  # in_tweeteval_val: kept out so TweetEval validation stays unseen
            text = parts[4]
            if text in seen:
                continue
            seen.add(text)
            by_class[LABELS.index(parts[2])].append(text)
    rng = np.random.default_rng(seed)
    texts: list[str] = []
    labels: list[int] = []
    for label, pool in enumerate(by_class):
        take = rng.permutation(len(pool))[:per_class]
        texts.extend(pool[i] for i in sorted(take))
        labels.extend([label] * len(take))
    return LabelledTexts("semeval2017_train", texts, np.asarray(labels, dtype=np.int64), "en")


def read_semeval_pool(data_dir: Path, held_out: list[LabelledTexts]) -> LabelledTexts:
    """Read every SemEval-2017 4A EN training tweet (deduped, file order) minus TweetEval-val and `held_out` ones."""
    path = data_dir / "sentiment_semeval2017_en_train" / "train.tsv"
    seen = {tweet_key(t) for data in held_out for t in data.texts}
    texts: list[str] = []
    labels: list[int] = []
    with path.open(encoding="utf-8") as handle:
        next(handle)
        for line in handle:
            parts = line.rstrip("\n").split("\t", 4)
            if len(parts) != 5 or parts[3] == "1":
                continue  # in_tweeteval_val
            key = tweet_key(parts[4])
            if key in seen:
                continue
            seen.add(key)
            texts.append(parts[4])
            labels.append(LABELS.index(parts[2]))
    return LabelledTexts("semeval2017_pool", texts, np.asarray(labels, dtype=np.int64), "en")


def read_germeval_docs(data_dir: Path, split_file: str = "dev_v1.4_docs.tsv", twitter_only: bool = False) -> LabelledTexts:
    """Read GermEval-2017 documents (Deutsche Bahn customer talk) with document sentiment."""
    path = data_dir / "sentiment_germeval2017_de" / split_file
    texts: list[str] = []
    labels: list[int] = []
    with path.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE):
            if twitter_only and "twitter.com/" not in row["id"]:
                continue
            if row["sentiment"] in LABELS and row["text"]:
                texts.append(row["text"])
                labels.append(LABELS.index(row["sentiment"]))
    name = "germeval2017_" + split_file.removesuffix("_docs.tsv") + ("_tweets" if twitter_only else "")
    return LabelledTexts(name, texts, np.asarray(labels, dtype=np.int64), "de")
