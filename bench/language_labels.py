"""Per-tweet language labels (bench/data/LANGUAGE_LABELS.md) and how a guess is scored against them."""

from __future__ import annotations

import hashlib
from pathlib import Path

from nlp.sentiment_data import LabelledTexts

DATA = Path(__file__).resolve().parent / "data"
# The evaluation sets' labels, and those of the splits the detector's settings were tuned on.
TEST_LABELS = DATA / "language_labels.tsv"
TUNING_LABELS = DATA / "language_labels_tuning.tsv"


def adjudicated_languages(data: LabelledTexts, labels: Path = TEST_LABELS) -> list[str]:
    """Return each text's language: its hand label in `labels` where there is one, else the
    collection's; stops if a labelled text changed."""
    gold = [data.lang] * len(data.texts)
    with labels.open(encoding="utf-8") as handle:
        next(handle)
        for line in handle:
            name, index, digest, label = line.rstrip("\n").split("\t")
            if name != data.name:
                continue
            text = data.texts[int(index)]
            if hashlib.sha1(text.encode("utf-8")).hexdigest()[:12] != digest:
                raise SystemExit(f"{labels.name}: {name} line {index} is not the text that was labelled; re-label it")
            gold[int(index)] = label
    return gold


def language_correct(guess: str, gold: str) -> bool:
    """Score one guess against a hand label: `mixed` takes en or de, `other` anything but them."""
    if gold == "mixed":
        return guess in ("en", "de")
    if gold == "other":
        return guess not in ("en", "de")
    return guess == gold
