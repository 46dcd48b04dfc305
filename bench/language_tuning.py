"""How the language detector's wider Lingua step was tuned; writes bench/results/language_tuning.json.

The step (nlp/language.py) has three settings: the gate (`unsure`: below this lite-model
probability for every expected language, the wider Lingua weighs in), Lingua's weight in the
product (`wide_weight`) and the prior. They were chosen on UMSAB's German and English train and
validation splits, never on the evaluation sets of bench/nlp_eval.py, against per-tweet labels
(bench/data/language_labels_tuning.tsv): the tweets where the collection's label and any
variant tried disagreed were labelled by hand, blind to which variant said what.

A variant that disagrees with the collection on a tweet nobody labelled is scored against the
collection's label; the `unlabelled` column counts those tweets, so a figure with a high count is
a guess, not a measurement. Caveat: UMSAB's English train and validation tweets are almost all
in TweetEval's validation split (1,754 of 2,161), so for this step the TweetEval row of
bench/nlp_eval.py is not held out (its figure is 0.9985 with and without the step).

Usage: python -m bench.language_tuning
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from bench.language_labels import TUNING_LABELS, adjudicated_languages, language_correct
from bench.machine import machine_info
from bench.rows import write_results
from nlp.language import LanguageDetector
from nlp.sentiment_data import LabelledTexts, read_umsab

DATA = Path(os.environ.get("RESONANZ_DATA", "/work/shared/data"))
RESULTS = Path(__file__).resolve().parent / "results" / "language_tuning.json"
PRIORS = (3.0, 5.0, 8.0)
WEIGHTS = (1.0, 1.5, 2.0, 3.0)
GATES = (0.3, 0.5, 0.7, 0.9)


def score(
    detector: LanguageDetector, sets: list[LabelledTexts], gold: dict[str, list[str]], labelled: set[tuple[str, int]]
) -> dict[str, int]:
    """Wrong answers per language of the collection, and disputed tweets not in `labelled` (by hand)."""
    counts = {"wrong_de": 0, "judged_de": 0, "wrong_en": 0, "judged_en": 0, "unlabelled": 0}
    for data in sets:
        guesses = [guess.lang for guess in detector.detect_many(data.texts, [None] * len(data.texts))]
        for i, (guess, label) in enumerate(zip(guesses, gold[data.name])):
            counts["unlabelled"] += guess != data.lang and (data.name, i) not in labelled
            if label != "none":
                counts[f"judged_{data.lang}"] += 1
                counts[f"wrong_{data.lang}"] += not language_correct(guess, label)
    return counts


def main() -> int:
    if not (DATA / "sentiment_xlmt_umsab_en_de").is_dir():
        print(f"bench/language_tuning.py: labelled data not found under {DATA}; set RESONANZ_DATA. Nothing tuned.")
        return 2
    started = time.perf_counter()
    sets = [read_umsab(DATA, language, split) for language in ("german", "english") for split in ("train", "val")]
    gold = {data.name: adjudicated_languages(data, TUNING_LABELS) for data in sets}
    lines = TUNING_LABELS.read_text(encoding="utf-8").splitlines()[1:]
    labelled = {(name, int(index)) for name, index, *_ in (line.split("\t") for line in lines)}
    variants: list[tuple[str, LanguageDetector]] = [
        ("lite model alone", LanguageDetector(prior=1.0, second_opinion=False)),
        ("prior, no Lingua", LanguageDetector(second_opinion=False)),
        ("Lingua between EN and DE only", LanguageDetector(others=())),
    ]
    variants += [(f"wider: prior {prior:g}, weight {weight:g}, gate {gate:g}",
                  LanguageDetector(prior=prior, wide_weight=weight, unsure=gate))
                 for prior in PRIORS for weight in WEIGHTS for gate in GATES]
    rows = []
    print(f"{'variant':45} {'DE wrong':>9} {'DE acc':>7} {'EN wrong':>9} {'EN acc':>7} {'unlabelled':>10}")
    for name, detector in variants:
        counts = score(detector, sets, gold, labelled)
        shipped = detector.model_version == LanguageDetector().model_version  # prior, weight and gate are in it
        result = {"variant": name, "shipped": shipped, **counts,
                  "accuracy_de": round(1 - counts["wrong_de"] / counts["judged_de"], 4),
                  "accuracy_en": round(1 - counts["wrong_en"] / counts["judged_en"], 4)}
        rows.append(result)
        print(f"{name + (' (shipped)' if shipped else ''):45} {counts['wrong_de']:>9} {result['accuracy_de']:>7.4f} "
              f"{counts['wrong_en']:>9} {result['accuracy_en']:>7.4f} {counts['unlabelled']:>10}")
    write_results(RESULTS, rows, seconds=round(time.perf_counter() - started, 1), machine=machine_info(),
                  splits=[data.name for data in sets], labels="bench/data/language_labels_tuning.tsv")
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
