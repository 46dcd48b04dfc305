"""Build real, tiny Hugging Face models from the labelled fixtures, for the bring-your-own-model tests.

Nothing is downloaded: a WordPiece tokenizer is built from the fixture texts with the
`tokenizers` library, a 2-layer BERT is initialised from a config and trained for a few epochs
on real labelled rows (TweetEval/UMSAB sentiment slices, WNUT-17/GermEval-2014 NER slices),
then written with `save_pretrained`, exactly as a user's fine-tuned model would be.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # read at import: nothing here may reach the hub

import torch
import transformers
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

FIXTURES = Path(__file__).parents[1] / "fixtures" / "nlp"
INTENT_FILE = Path(__file__).parents[2] / "nlp" / "data" / "intent" / "intent_labelled.csv"
SENTIMENT_FILES = ("sentiment_en_tweeteval_val_300.tsv", "sentiment_de_umsab_test_300.tsv")
NER_FILES = ("hf/ner_wnut17_en_train_200.conll", "hf/ner_germeval2014_de_dev_200.conll")
SEED = 13
MAX_LENGTH = 64


def sentiment_rows() -> list[tuple[str, str]]:
    """Return the 600 real labelled EN+DE tweets as (label, text)."""
    rows: list[tuple[str, str]] = []
    for name in SENTIMENT_FILES:
        with (FIXTURES / name).open(encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
            rows += [(row["label"], row["text"]) for row in reader]
    return rows


def intent_rows(none_rows: int = 150) -> list[tuple[str, str]]:
    """Return the hand-labelled EN+DE intent posts with an intent, plus the first `none_rows` without one."""
    with INTENT_FILE.open(encoding="utf-8", newline="") as handle:
        rows = [(row["label"], row["text"]) for row in csv.DictReader(handle)]
    return [r for r in rows if r[0] != "none"] + [r for r in rows if r[0] == "none"][:none_rows]


def ner_sentences() -> list[list[tuple[str, str]]]:
    """Return the 400 real EN+DE NER sentences as [(token, BIO tag)], tags as the corpora spell them."""
    sentences: list[list[tuple[str, str]]] = []
    for name in NER_FILES:
        current: list[tuple[str, str]] = []
        for line in (FIXTURES / name).read_text(encoding="utf-8").splitlines():
            if line.strip():
                token, tag = line.split("\t")
                current.append((token, tag))
            elif current:
                sentences.append(current)
                current = []
        if current:
            sentences.append(current)
    return sentences


def train_tokenizer(texts: list[str]) -> transformers.PreTrainedTokenizerFast:
    """Build a cased WordPiece tokenizer from `texts` and wrap it as a transformers fast tokenizer.

    The vocabulary is counted here rather than by `tokenizers`' WordPieceTrainer, whose ties
    come out in a different order on every run: words seen at least twice, plus every
    character as a word start and as a "##" continuation, so any word still tokenizes.
    """
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    normalizer = normalizers.BertNormalizer(lowercase=False)
    counts: dict[str, int] = {}
    for text in texts:
        for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text)):
            counts[word] = counts.get(word, 0) + 1
    chars = sorted({c for word in counts for c in word})
    words = sorted(w for w, n in counts.items() if n >= 2 and len(w) > 1)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars, *(f"##{c}" for c in chars), *words]
    tok = Tokenizer(models.WordPiece({token: i for i, token in enumerate(vocab)}, unk_token="[UNK]"))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizer
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)],
    )
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
        sep_token="[SEP]", mask_token="[MASK]", model_max_length=MAX_LENGTH,
    )


def _config(vocab_size: int, labels: list[str]) -> transformers.BertConfig:
    return transformers.BertConfig(
        vocab_size=vocab_size, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=128, max_position_embeddings=MAX_LENGTH,
        id2label=dict(enumerate(labels)), label2id={label: i for i, label in enumerate(labels)},
    )


def _train(model: Any, batch: dict[str, torch.Tensor], epochs: int, lr: float = 3e-3, batch_size: int = 32,
           class_weight: torch.Tensor | None = None) -> None:
    torch.manual_seed(SEED)
    order = torch.Generator().manual_seed(SEED)
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr)
    loss_fn = torch.nn.CrossEntropyLoss(weight=class_weight, ignore_index=-100)
    labels = batch["labels"]
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(labels.shape[0], generator=order).split(batch_size):
            # Cut the padding this batch does not need: most tweets are far shorter than MAX_LENGTH.
            width = int(inputs["attention_mask"][idx].sum(dim=1).max())
            logits = model(**{k: v[idx, :width] for k, v in inputs.items()}).logits
            gold = labels[idx, :width] if labels.dim() == 2 else labels[idx]
            loss = loss_fn(logits.reshape(-1, logits.shape[-1]), gold.reshape(-1))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    model.eval()


def build_classifier(out: Path, rows: list[tuple[str, str]], labels: list[str], epochs: int,
                     tokenizer: transformers.PreTrainedTokenizerFast) -> Path:
    """Train a BertForSequenceClassification on real (label, text) rows; `labels` names its classes."""
    torch.manual_seed(SEED)
    model = transformers.BertForSequenceClassification(_config(tokenizer.vocab_size, labels))
    batch = dict(tokenizer([text for _, text in rows], padding=True, truncation=True, return_tensors="pt"))
    batch["labels"] = torch.tensor([labels.index(label) for label, _ in rows])
    _train(model, batch, epochs)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def build_ner_model(out: Path, epochs: int, tokenizer: transformers.PreTrainedTokenizerFast) -> Path:
    """Train a BertForTokenClassification on the real WNUT-17 + GermEval-2014 slices (their own tag names)."""
    torch.manual_seed(SEED)
    sentences = ner_sentences()
    tags = ["O"] + sorted({tag for sentence in sentences for _, tag in sentence} - {"O"})
    model = transformers.BertForTokenClassification(_config(tokenizer.vocab_size, tags))
    enc = tokenizer([[t for t, _ in s] for s in sentences], is_split_into_words=True,
                    padding=True, truncation=True, return_tensors="pt")
    labels = torch.full(enc["input_ids"].shape, -100)
    for row, sentence in enumerate(sentences):
        seen: set[int] = set()
        for col, word in enumerate(enc.word_ids(row)):
            if word is not None and word not in seen:  # label the first piece of each word
                labels[row, col] = tags.index(sentence[word][1])
                seen.add(word)
    batch = {**dict(enc), "labels": labels}
    # Nine in ten tokens are "O": without a lighter weight the tiny model predicts only "O" for many epochs.
    class_weight = torch.ones(len(tags))
    class_weight[0] = 0.2
    _train(model, batch, epochs, lr=2e-3, batch_size=8, class_weight=class_weight)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def continue_training(src: Path, out: Path, epochs: int) -> Path:
    """Train the sentiment model in `src` for more epochs and save it to `out`: new weights, same recipe."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(src, local_files_only=True)
    model = transformers.BertForSequenceClassification.from_pretrained(src, local_files_only=True)
    rows = sentiment_rows()
    batch = dict(tokenizer([text for _, text in rows], padding=True, truncation=True, return_tensors="pt"))
    batch["labels"] = torch.tensor([["negative", "neutral", "positive"].index(label) for label, _ in rows])
    _train(model, batch, epochs)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def rename_labels(src: Path, out: Path, names: list[str]) -> Path:
    """Save the model in `src` with other class names, as checkpoints saved without label names look."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(src, local_files_only=True)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(src, local_files_only=True)
    model.config.id2label = dict(enumerate(names))
    model.config.label2id = {name: i for i, name in enumerate(names)}
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def build_all(root: Path) -> dict[str, Path]:
    """Build every model the tests use under `root`; returns name -> model directory."""
    torch.set_num_threads(1)  # 2 shared cores: one thread is faster than two fighting for them
    texts = [text for _, text in sentiment_rows() + intent_rows()] + [" ".join(t for t, _ in s) for s in ner_sentences()]
    tokenizer = train_tokenizer(texts)
    sentiment = build_classifier(root / "tiny-sentiment", sentiment_rows(), ["negative", "neutral", "positive"], 3, tokenizer)
    intent_labels = sorted({label for label, _ in intent_rows()})
    return {
        "intent": build_classifier(root / "tiny-intent", intent_rows(), intent_labels, 3, tokenizer),
        "sentiment": sentiment,
        "sentiment_retrained": continue_training(sentiment, root / "tiny-sentiment-v2", 1),
        "sentiment_anonymous": rename_labels(sentiment, root / "tiny-sentiment-anon", ["LABEL_0", "LABEL_1", "LABEL_2"]),
        "ner": build_ner_model(root / "tiny-ner", 4, tokenizer),
    }
