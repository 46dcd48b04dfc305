"""Train the shared-pass entity heads: writes nlp/models/ner_e5/shared_{de,en}.npz.

Run `python -m nlp.train_e5_shared_ner DATA_DIR [--lang de|en|both] [--out nlp/models] [--seed 13]`
after the sentiment model (`python -m nlp.train_e5_sentiment`): the heads read that model's
encoder states, so they are retrained whenever it changes (the head file records which one).
Same splits as the other NER engines (nlp.ner_data), so the three are compared on the same rows.

Recipe: the sentiment encoder stays frozen; each sentence is encoded once (layers 4, 6, 8, 10,
12, kept in float16), then the head (projection, BiLSTM, BIO layer; nlp.e5_shared) trains on
every piece: a piece where a word starts takes the word's tag, a piece inside a word I-<label>
or O. AdamW at 2e-3, batches of 32 sentences, EPOCHS passes; the epoch with the best tune F1,
scored through the product's own path, is kept. A few minutes per language on 2 cores.
"""

from __future__ import annotations

import json
import random
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from nlp.e5_ner import file_digest
from nlp.e5_sentiment import FINETUNED_PATH, FineTunedSentimentModel
from nlp.e5_shared import (
    SHARED_LAYERS,
    build_piece_tagger,
    post_pieces,
    save_piece_tagger,
    sentiment_digest,
    shared_head_path,
)
from nlp.e5_torch import length_batches, pad_batch, require_torch
from nlp.ner_data import Sentence, germeval_splits, wnut_splits
from nlp.train_e5_ner import IGNORE, BestEpoch, parse_ner_arguments, tune_f1

LEARNING_RATE = 2e-3
BATCH = 32
EPOCHS = 10
ENCODE_BATCH = 32


def piece_targets(sentence: Sentence, starts: list[int], tag_ids: dict[str, int]) -> list[int]:
    """Return the training tag of each piece (IGNORE for the prefix)."""
    word_starts, offset = [], 0
    for word in sentence.words:
        word_starts.append(offset)
        offset += len(word) + 1
    label_of = ["O"] * len(sentence.words)
    first = [False] * len(sentence.words)
    for start, end, label in sentence.spans:
        label_of[start:end] = [label] * (end - start)
        first[start] = True
    targets = []
    for char in starts:
        if char < 0:
            targets.append(IGNORE)
            continue
        word = int(np.searchsorted(word_starts, char, side="right")) - 1
        label = label_of[word]
        if label == "O":
            targets.append(tag_ids["O"])
        else:
            at_word_start = char == word_starts[word]
            targets.append(tag_ids[f"{'B' if at_word_start and first[word] else 'I'}-{label}"])
    return targets


def encode_sentences(sentiment: FineTunedSentimentModel, sentences: list[Sentence], tag_ids: dict[str, int]) -> list[tuple[Any, Any]]:
    """Return (layer states float16 (pieces, 1920), targets) per sentence from the frozen sentiment encoder."""
    torch = require_torch()
    model = sentiment._load()[0]
    encoded = [post_pieces(model.tokenizer, s.text) for s in sentences]
    rows_out: list[tuple[Any, Any]] = [None] * len(sentences)  # type: ignore[list-item]
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i][0]))
    with torch.inference_mode():
        for start in range(0, len(order), ENCODE_BATCH):
            rows = order[start : start + ENCODE_BATCH]
            ids, mask = pad_batch(model.tokenizer, [encoded[i][0] for i in rows])
            states = torch.cat(model.encoder.layer_states(ids, mask, SHARED_LAYERS), -1)
            for b, i in enumerate(rows):
                n = len(encoded[i][0])
                rows_out[i] = (
                    states[b, 1 : n + 1].to(torch.float16).clone(),
                    torch.tensor(piece_targets(sentences[i], encoded[i][1], tag_ids), dtype=torch.long),
                )
    return rows_out


def train_language(
    lang: str, data_dir: Path, out_dir: Path, seed: int, sentiment_path: Path = FINETUNED_PATH, epochs: int = EPOCHS
) -> dict[str, Any]:
    """Train one language's head into out_dir/ner_e5/shared_<lang>.npz and return its metrics."""
    torch = require_torch()
    torch.manual_seed(seed)
    rng = random.Random(seed)
    started = time.perf_counter()
    splits = germeval_splits(data_dir, seed) if lang == "de" else wnut_splits(data_dir, seed)
    labels = sorted({label for part in splits.values() for s in part for *_, label in s.spans})
    tags = ["O"] + [f"{prefix}-{label}" for label in labels for prefix in "BI"]
    tag_ids = {tag: i for i, tag in enumerate(tags)}
    sentiment = FineTunedSentimentModel(sentiment_path, precision="fp32")  # trained on float32 states
    rows = encode_sentences(sentiment, splits["train"], tag_ids)
    encoded_seconds = time.perf_counter() - started
    tagger = build_piece_tagger(len(tags))
    optimiser = torch.optim.AdamW(tagger.parameters(), lr=LEARNING_RATE, weight_decay=0.01)
    digest = sentiment_digest(sentiment_path)
    target = shared_head_path(out_dir, lang)
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f"resonanz-shared-ner-{lang}-"))
    shared_head_path(scratch, lang).parent.mkdir()
    keeper = BestEpoch("nlp.train_e5_shared_ner", lang, "shared", splits["tune"], target, sentiment_path)
    for epoch in range(epochs):
        tagger.train()
        for indices in length_batches([len(t) for _, t in rows], BATCH, rng):
            batch = [rows[i] for i in indices]
            lengths = torch.tensor([len(t) for _, t in batch])
            states = torch.nn.utils.rnn.pad_sequence([s.float() for s, _ in batch], batch_first=True)
            gold = torch.nn.utils.rnn.pad_sequence([t for _, t in batch], batch_first=True, padding_value=IGNORE)
            logits = tagger(states, lengths)
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, len(tags)), gold.reshape(-1), ignore_index=IGNORE)
            loss.backward()
            optimiser.step()
            optimiser.zero_grad()
        tagger.eval()
        save_piece_tagger(shared_head_path(scratch, lang), tagger, tags, digest)
        keeper.score(scratch, shared_head_path(scratch, lang), epoch + 1, epochs)
    shutil.rmtree(scratch)
    heldout = tune_f1(out_dir, lang, splits["heldout"], "shared", sentiment_path)
    metrics = {
        "lang": lang,
        "seed": seed,
        "sentiment_model": f"{sentiment_path.name} sha256 {digest}",
        "rows": {name: len(part) for name, part in splits.items()},
        "epochs": keeper.history,
        "heldout": {k: round(v, 4) for k, v in heldout.items()},
        "encode_seconds": round(encoded_seconds, 1),
        "train_seconds": round(time.perf_counter() - started, 1),
        "model_version": file_digest(target),
        "artefact_bytes": target.stat().st_size,
    }
    (target.parent / f"metrics_shared_{lang}.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    return metrics


def main(argv: list[str] | None = None) -> int:
    parsed = parse_ner_arguments("nlp.train_e5_shared_ner", __doc__.splitlines()[0], argv)
    if parsed is None:
        return 2
    args, langs = parsed
    # After `resonanz train sentiment --out DIR` the new sentiment model is in DIR: read that one.
    sentiment_path = args.out / FINETUNED_PATH.name if (args.out / FINETUNED_PATH.name).is_file() else FINETUNED_PATH
    for lang in langs:
        metrics = train_language(lang, args.data_dir, args.out, args.seed, sentiment_path, args.epochs or EPOCHS)
        print(json.dumps(metrics, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
