"""Float32, bfloat16 and int8 e5 passes, side by side: quality, agreement and enrich speed.

`[nlp] e5_precision` picks how the bundled e5 encoders multiply ("auto" = the fastest the CPU
runs natively). This runs the default models each way on the same real data:

* sentiment (the fine-tuned model as shipped): TweetEval validation macro-recall, UMSAB EN and
  DE test macro-F1, and the share of answers that equal the float32 ones;
* entities: the default `shared` engine (heads on the sentiment encoder) and the `e5` engine,
  on WNUT-17 dev and the GermEval-2014 held-out part (as bench/eval_ner.py scores them);
* speed: the whole Enricher as configured by default (shared pass, text cache) on the EN+DE
  mix of bench/enrich.py, posts/s and CPU seconds, each precision in a fresh process.

Reads /work/shared/data (or $RESONANZ_DATA) and says so when it is absent. Writes
bench/results/precision.json. Usage: python -m bench.precision [--posts-per-language 250]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import f1_score, recall_score

from bench.machine import machine_info
from bench.rows import print_rows, row, write_results

DATA = Path(os.environ.get("RESONANZ_DATA", "/work/shared/data"))
RESULTS = Path(__file__).parent / "results" / "precision.json"
PRECISIONS = ("fp32", "bf16", "int8")


def sentiment_rows(predictions: dict[str, dict[str, np.ndarray]], sets: dict) -> list[dict]:
    """Quality of each precision's labels, and their agreement with float32."""
    rows = []
    for precision, by_set in predictions.items():
        task = f"sentiment ({precision})"
        for name, data in sets.items():
            predicted = by_set[name]
            rows.append(row(task, name, data.lang, "val" if name == "tweeteval_val" else "test", "macro_f1",
                            f1_score(data.labels, predicted, average="macro"), len(data)))
            if name == "tweeteval_val":
                rows.append(row(task, name, "en", "val", "macro_recall", recall_score(data.labels, predicted, average="macro"), len(data)))
            rows.append(row(task, name, data.lang, rows[-1]["split"], "same_label_as_fp32",
                            float(np.mean(predicted == predictions["fp32"][name])), len(data)))
    return rows


def quality_rows() -> list[dict]:
    """Return sentiment and entity rows for every precision."""
    from bench.eval_ner import extractor_spans
    from nlp.e5_sentiment import FineTunedSentimentModel
    from nlp.entities import EntityExtractor
    from nlp.ner_data import WNUT_DEV_FILE, germeval_splits, read_wnut, score_spans
    from nlp.sentiment_data import read_tweeteval_val, read_umsab

    sets = {"tweeteval_val": read_tweeteval_val(DATA), "umsab_en_test": read_umsab(DATA, "english", "test"),
            "umsab_de_test": read_umsab(DATA, "german", "test")}
    ner_sets = {("wnut17", "en", "dev"): read_wnut(DATA / WNUT_DEV_FILE),
                ("germeval2014", "de", "dev_heldout20"): germeval_splits(DATA, seed=13)["heldout"]}
    predictions: dict[str, dict[str, np.ndarray]] = {}
    spans: dict[tuple, list[set]] = {}
    for precision in PRECISIONS:
        model = FineTunedSentimentModel(precision=precision)
        predictions[precision] = {name: model.probabilities(d.texts, d.lang).argmax(axis=1) for name, d in sets.items()}
        for engine in ("shared", "e5"):
            extractor = EntityExtractor([], engine=engine, sentiment=model, precision=precision)
            for (dataset, lang, split), sentences in ner_sets.items():
                spans[(precision, engine, dataset, lang, split)] = extractor_spans(extractor, sentences, lang)
    rows = sentiment_rows(predictions, sets)
    for (precision, engine, dataset, lang, split), found in spans.items():
        sentences = ner_sets[(dataset, lang, split)]
        task = f"entities {engine} ({precision})"
        rows.append(row(task, dataset, lang, split, "micro_f1", score_spans([s.char_spans() for s in sentences], found)["micro_f1"], len(sentences)))
        same = np.mean([a == b for a, b in zip(found, spans[("fp32", engine, dataset, lang, split)])])
        rows.append(row(task, dataset, lang, split, "same_spans_as_fp32", float(same), len(sentences)))
    return rows


def speed(precision: str, per_language: int) -> dict:
    """Time the default Enricher (shared pass + text cache) with `precision`; run in a fresh process."""
    from bench.enrich import BATCH, brands, load_mix, warmup_posts
    from nlp.cascade import build_sentiment_model
    from nlp.pipeline import Enricher, models_out_of_gc
    from resonanz.settings import NlpSettings

    defaults = NlpSettings()
    posts, _ = load_mix(per_language)
    sentiment = build_sentiment_model(defaults.sentiment_mode, defaults.sentiment_cache_entries, precision)
    enricher = Enricher(brands(), sentiment=sentiment, ner_engine=defaults.ner_engine, e5_precision=precision)
    with models_out_of_gc() as loaded:  # as the enrich task runs
        enricher.enrich(warmup_posts(posts, BATCH))  # loads every model on other posts; not timed
        loaded()
        started, cpu_started = time.perf_counter(), time.process_time()
        for i in range(0, len(posts), BATCH):
            enricher.enrich(posts[i : i + BATCH])
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return {"precision": precision, "posts": len(posts), "seconds": round(seconds, 2), "posts_per_second": round(len(posts) / seconds, 1),
            "cpu_seconds": round(cpu, 2), "model_versions": enricher.model_versions(), "load_average": Path("/proc/loadavg").read_text().split()[:3]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.precision", description=__doc__.splitlines()[0])
    parser.add_argument("--posts-per-language", type=int, default=250)
    parser.add_argument("--speed-only", choices=PRECISIONS, help=argparse.SUPPRESS)  # the child process
    parser.add_argument("--repeats", type=int, default=3, help="speed runs per precision, alternating (median reported)")
    args = parser.parse_args(argv)
    if args.speed_only:
        print(json.dumps(speed(args.speed_only, args.posts_per_language)))
        return 0
    if not (DATA / "sentiment_tweeteval_en").is_dir():
        print(f"bench/precision.py: the labelled data is not under {DATA}; set RESONANZ_DATA. Nothing measured.")
        return 2
    started = time.perf_counter()
    rows = quality_rows()
    runs: dict[str, list[dict]] = {p: [] for p in PRECISIONS}
    for _ in range(args.repeats):
        for precision in PRECISIONS:
            out = subprocess.run([sys.executable, "-m", "bench.precision", "--speed-only", precision,
                                  "--posts-per-language", str(args.posts_per_language)],
                                 check=True, capture_output=True, text=True).stdout
            runs[precision].append(json.loads(out.strip().splitlines()[-1]))
    for precision, measured in runs.items():
        rates = sorted(r["posts_per_second"] for r in measured)
        rows.append(row(f"enrich speed ({precision})", "bench.enrich mix", "en+de", "-", "posts_per_s_median", rates[len(rates) // 2], measured[0]["posts"]))
    print_rows(rows)
    write_results(RESULTS, rows, speed_runs=runs, seconds=round(time.perf_counter() - started, 1), machine=machine_info(),
                  notes="Each speed run is a fresh process; the precisions alternate so that all see the same machine load.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
