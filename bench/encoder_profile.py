"""Where enrich's time goes inside the default e5 pass: PyTorch operators and the Python around them.

bench/enrich.py gives each step's share (the sentiment step, which runs the encoder for sentiment,
entities and intent at once, is ~85-90%). This looks inside that step on the same EN+DE mix:

* the PyTorch operators' own CPU time (torch.profiler), largest first, as shares of all operators;
  `onednn::qlinear_pointwise` is the int8 matrix products, the rest is attention, layer norms,
  quantising activations and the entity heads;
* the Python parts of the step, timed around the functions that do them: tokenising into pieces
  (`post_pieces`), the n-gram model's counts, the entity heads' tagging (`observe`), and the
  intent step's features, which run outside the sentiment step;
* the CPU's matrix units (AMX, VNNI) and the precision `auto` chose;
* how many pieces the encoder reads, padding included, when the same posts come in calls of 256
  or of `nlp.pipeline.POSTS_PER_CALL` (1024): each call's texts of a language are sorted by length
  and cut into batches by a piece budget, so a wider call pads less.

Figures are shares, so a machine that is busy with other work shifts them less than it shifts
posts/s. Usage: python -m bench.encoder_profile [--posts-per-language 1000]; writes
bench/results/encoder_profile.json. Reads the bundled sample, plus /work/shared/data (or
$RESONANZ_DATA) for the general tweets of the bench.enrich mix when it is there.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.machine import machine_info
from bench.rows import write_results
from nlp.pipeline import POSTS_PER_CALL

RESULTS = Path(__file__).parent / "results" / "encoder_profile.json"
TOP_OPS = 15


def op_shares(averages: Any, top: int = TOP_OPS) -> list[dict]:
    """Return the `top` operators of a torch.profiler `key_averages()` by own CPU time, each with
    its seconds, calls and share of all operators' own time (the shares of every operator sum to 1)."""
    events = [e for e in averages if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)
    ranked = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:top]
    return [
        {"op": e.key, "seconds": round(e.self_cpu_time_total / 1e6, 3), "calls": e.count,
         "share": round(e.self_cpu_time_total / total, 3)}
        for e in ranked
    ]


@contextmanager
def timed_functions(targets: list[tuple[Any, str, str]]) -> Iterator[dict[str, float]]:
    """Time every call of each (owner, attribute, label) in `targets` while the block runs; put back
    the originals after. Yields the seconds per label."""
    seconds: dict[str, float] = defaultdict(float)
    originals = [(owner, name, getattr(owner, name)) for owner, name, _ in targets]

    def timer(function: Callable, label: str) -> Callable:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                seconds[label] += time.perf_counter() - started
        return timed

    for (owner, name, original), (_, _, label) in zip(originals, targets):
        setattr(owner, name, timer(original, label))
    try:
        yield seconds
    finally:
        for owner, name, original in originals:
            setattr(owner, name, original)


def padding_by_call_size(pieces_by_lang: dict[str, list[int]], call_sizes: tuple[int, ...]) -> dict[str, dict[str, int]]:
    """Return, per posts per call, the encoder batches and padded pieces for texts whose piece counts
    (with <s> and </s>) are `pieces_by_lang`, the languages interleaved in calls as in the mix."""
    from nlp.e5_torch import inference_batches

    real = sum(map(sum, pieces_by_lang.values()))
    out = {}
    for size in call_sizes:
        batches = padded = 0
        for lengths in pieces_by_lang.values():
            share = size // len(pieces_by_lang)  # the mix alternates languages post by post
            for start in range(0, len(lengths), share):
                for rows in inference_batches(lengths[start : start + share]):
                    batches += 1
                    padded += len(rows) * max(lengths[start + i] for i in rows)
        out[str(size)] = {"batches": batches, "padded_pieces": padded, "real_pieces": real}
    return out


def matrix_units() -> dict[str, bool]:
    """Return which int8/bfloat16 matrix instructions this CPU offers PyTorch."""
    import torch

    checks = {"amx": "_is_amx_tile_supported", "avx512_vnni": "_is_vnni_supported", "avx512_bf16": "_is_avx512_bf16_supported"}
    return {name: bool(getattr(torch.cpu, check, lambda: False)()) for name, check in checks.items()}


def profile(per_language: int) -> dict:
    """Enrich the bench.enrich mix once untimed, then once under the profiler; return the figures."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    import nlp.e5_sentiment
    import nlp.sentiment
    from bench.enrich import brands, load_mix, warmup_posts
    from nlp.cascade import build_sentiment_model
    from nlp.e5_shared import SharedEntityHeads
    from nlp.intent import IntentFeatures
    from nlp.pipeline import Enricher

    posts, sources = load_mix(per_language)
    model = build_sentiment_model()  # the default: fine-tuned e5, e5_precision "auto", every post read
    enricher = Enricher(brands(), sentiment=model, ner_engine="shared")
    enricher.enrich(warmup_posts(posts, 256) or posts[:256])  # loads the models; not counted
    sentiment = nlp.e5_sentiment.finetuned_source(model)
    enricher.timings.clear()
    targets = [
        (nlp.e5_sentiment, "post_pieces", "tokenise into pieces"),
        (nlp.sentiment, "ngram_counts", "sentiment n-gram counts"),
        (SharedEntityHeads, "observe", "entity heads (tagging + keeping tags)"),
        (IntentFeatures, "transform", "intent features (intent step)"),
    ]
    with timed_functions(targets) as python_parts, torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        started = time.perf_counter()
        for i in range(0, len(posts), POSTS_PER_CALL):  # as the enrich task hands them over
            enricher.enrich(posts[i : i + POSTS_PER_CALL])
        seconds = time.perf_counter() - started
    steps = dict(enricher.timings)
    averages = prof.key_averages()  # aggregates every recorded event: once
    padding = {}
    if sentiment is not None:  # after the timed pass: tokenising here first would warm its word cache
        # Piece counts as the encoder reads them (posts only: per-brand clauses ride along in the product).
        lengths = {lang: [len(nlp.e5_sentiment.post_pieces(sentiment.tokenizer, p.text)[0]) + 2 for p in posts[first::2]]
                   for lang, first in (("en", 0), ("de", 1))}
        padding = padding_by_call_size(lengths, (256, POSTS_PER_CALL))
    return {
        "posts": len(posts),
        "posts_per_call": POSTS_PER_CALL,
        "mix": sources,
        "seconds_under_profiler": round(seconds, 2),
        "precision": sentiment.precision if sentiment else "none",
        "matrix_units": matrix_units(),
        "seconds_per_step": {k: round(v, 2) for k, v in sorted(steps.items())},
        "python_parts_seconds": {k: round(v, 2) for k, v in python_parts.items()},
        "torch_ops_seconds": round(sum(e.self_cpu_time_total for e in averages) / 1e6, 2),
        "top_ops": op_shares(averages),
        "padding_by_posts_per_call": padding,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts-per-language", type=int, default=1000)
    args = parser.parse_args(argv)
    result = profile(args.posts_per_language)
    print(f"{result['posts']} posts in {result['seconds_under_profiler']} s under the profiler; "
          f"precision {result['precision']}; matrix units {result['matrix_units']}")
    print("steps (s):", result["seconds_per_step"])
    print("python parts (s):", result["python_parts_seconds"])
    print(f"torch operators' own time: {result['torch_ops_seconds']} s")
    for op in result["top_ops"]:
        print(f"  {op['op']:<32} {op['seconds']:>7.3f} s  {op['calls']:>6} calls  {op['share']:.1%}")
    for size, counts in result["padding_by_posts_per_call"].items():
        print(f"calls of {size} posts: {counts['batches']} encoder batches, {counts['padded_pieces']:,} pieces padded "
              f"for {counts['real_pieces']:,} real")
    write_results(RESULTS, [], machine=machine_info(), **result)
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
