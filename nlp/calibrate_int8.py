"""Measure the activation ranges that `[nlp] e5_precision = "int8"` quantises with.

Run `python -m nlp.calibrate_int8 [DATA_DIR] [--out nlp/models] [--seed 13]` after training any
e5 adapter (`resonanz train sentiment|ner` does). For each bundled adapter file (sentiment, and the per-language e5 NER engines) it
runs the float32 encoder over CALIBRATION_PER_LANGUAGE real tweets per language from the UMSAB
EN and DE train splits (never an evaluation split), records the smallest and largest value of
each input channel of every linear layer, and writes them beside the adapter as `<name>.int8.npz`
together with the adapter's SHA-256, so that ranges from an older adapter are refused rather
than used. Loading turns the channel ranges into SmoothQuant factors and one range per layer
(`Linear.quantise` in nlp/e5_torch.py).

Why fixed ranges: quantising each batch with its own range made ~4% of sentiment labels depend
on which posts shared the batch (measured on TweetEval validation, posts in reverse order).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

from nlp.e5_ner import adapter_path
from nlp.e5_sentiment import FINETUNED_PATH, pooled_logits
from nlp.e5_torch import int8_ranges_path, load_adapter_file, require_torch, sha256_prefix
from nlp.sentiment_data import read_umsab

CALIBRATION_PER_LANGUAGE = 512
SEED = 13


def calibration_texts(data_dir: Path, per_language: int = CALIBRATION_PER_LANGUAGE, seed: int = SEED) -> list[str]:
    """Return `per_language` UMSAB train tweets each for EN and DE, drawn with a fixed seed."""
    rng = np.random.default_rng(seed)
    texts: list[str] = []
    for language in ("english", "german"):
        train = read_umsab(data_dir, language, "train")
        texts += [train.texts[i] for i in sorted(rng.choice(len(train.texts), per_language, replace=False))]
    return texts


def activation_ranges(adapter_path: Path, texts: list[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Return (min, max) per input channel of every linear layer over `texts`, with the adapter in float32."""
    torch = require_torch()
    model = load_adapter_file(adapter_path, "fp32")
    model.encoder.fuse_qkv()  # int8 runs q, k and v as one product, so its ranges are named "qkv"
    ranges: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def recorder(name: str):
        def record(_module, inputs) -> None:
            flat = inputs[0].reshape(-1, inputs[0].shape[-1])
            low, high = flat.amin(0).numpy(), flat.amax(0).numpy()
            if name in ranges:
                low, high = np.minimum(ranges[name][0], low), np.maximum(ranges[name][1], high)
            ranges[name] = (low, high)
        return record

    hooks = [module.register_forward_pre_hook(recorder(name)) for name, module in model.encoder.linear_layers()]
    try:
        with torch.inference_mode():
            pooled_logits(model, texts)
    finally:
        for hook in hooks:
            hook.remove()
    return ranges


def write_ranges(adapter_path: Path, texts: list[str], described: str = "") -> Path:
    """Measure and write the ranges file for one adapter; return its path."""
    ranges = activation_ranges(adapter_path, texts)
    out = int8_ranges_path(adapter_path)
    channels = {}
    for name, (low, high) in ranges.items():
        # float16 halves the file; a range 0.05% narrower or wider changes nothing measurable.
        channels[name + ".low"], channels[name + ".high"] = low.astype(np.float16), high.astype(np.float16)
    np.savez(
        out, adapter=np.array(adapter_path.name), adapter_sha256=np.array(sha256_prefix(adapter_path)),
        calibration=np.array(described or f"{len(texts)} texts"), **channels,
    )
    return out


def adapter_files(models_dir: Path) -> list[Path]:
    """Return the bundled adapters that run an encoder of their own (the shared heads ride on sentiment's)."""
    candidates = [models_dir / FINETUNED_PATH.name, adapter_path(models_dir, "en"), adapter_path(models_dir, "de")]
    return [path for path in candidates if path.is_file()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nlp.calibrate_int8", description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", nargs="?", type=Path, default=Path(os.environ.get("RESONANZ_DATA", "../shared/data")))
    parser.add_argument("--out", type=Path, default=FINETUNED_PATH.parent, help="the models folder the adapters are in")
    parser.add_argument("--seed", type=int, default=SEED, help="which calibration tweets are drawn")
    args = parser.parse_args(argv)
    if not (args.data_dir / "sentiment_xlmt_umsab_en_de").is_dir():
        print(f"nlp.calibrate_int8: the UMSAB data is not under {args.data_dir}; pass the labelled data folder.")
        return 2
    texts = calibration_texts(args.data_dir, seed=args.seed)
    described = f"{CALIBRATION_PER_LANGUAGE} UMSAB train tweets per language (EN, DE), seed {args.seed}"
    for adapter in adapter_files(args.out):
        print(f"wrote {write_ranges(adapter, texts, described)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
