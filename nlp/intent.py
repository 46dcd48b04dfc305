"""Purchase intent (buy/consider/recommend/complaint/churn/none) for EN and DE posts.

A linear softmax model over hashed character 2-5-grams (within word boundaries) and the counts
of the EN/DE cue lexicon in `nlp.intent_lexicon`, trained by `nlp.train_intent` on the
hand-labelled posts in nlp/data/intent/ (rules: docs/intent_guidelines.md). Hashing keeps the
artefact to plain arrays (no vocabulary, no pickle).

Where the fine-tuned sentiment model runs on every post (the default), a second set of weights
also reads each post's mean-pooled encoder state from that model's pass (`StateSource`):
cross-validated macro-F1 EN 0.535 -> 0.601, DE 0.439 -> 0.448 (four fold splits; the model
card). Elsewhere (another sentiment model, `model_scope = "brand_posts"`, no PyTorch) the
n-gram weights alone run, under their own version.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Protocol

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import HashingVectorizer

from nlp.errors import ModelMissingError
from nlp.intent_lexicon import GROUPS, cue_counts, lexicon_digest
from nlp.text import MAX_CHARS, for_sentiment, letter_count, safe_text

MODEL_PATH = Path(__file__).with_name("models") / "intent" / "intent_linear.npz"
MODEL_NAME = "intent-hashed-ngrams+lexicon-linear"
STATES_MODEL_PATH = MODEL_PATH.with_name("intent_e5states.npz")
STATES_MODEL_NAME = "intent-ngrams+lexicon+e5-states-linear"
LABELS = ("buy", "consider", "recommend", "complaint", "churn", "none")
LANGS = ("en", "de")
# A post needs a few letters to show an intent; emoji-only or link-only posts get None.
MIN_LETTERS = 3
# Intent shows early in a post; long forum pastes are cut so one 1 MB post cannot stall a batch.
MAX_INTENT_CHARS = 1_000
CHAR_FEATURES = 2**16
# Lexicon counts are capped so one long rant does not dominate the linear score.
CUE_CAP = 3
# Cue columns are scaled up so the dozen lexicon features are cheap to use under L2
# regularisation; chosen by cross-validation with the feature blocks (see the model card).
CUE_WEIGHT = 3.0
FEATURE_SPEC = f"c{CHAR_FEATURES}+cue{CUE_CAP}x{CUE_WEIGHT}"


def normalise(text: str) -> str:
    """Return the lower-cased, tweet-normalised text the model reads (URLs -> http, handles -> @user)."""
    return for_sentiment(text[:MAX_CHARS])[:MAX_INTENT_CHARS].lower()


class IntentFeatures:
    """Turn normalised texts of one language into the sparse feature matrix the model reads."""

    def __init__(self, cue_weight: float = CUE_WEIGHT) -> None:
        self.cue_weight = cue_weight
        # Stateless hashing: the same text always maps to the same columns, so the trained
        # weights are the whole artefact. Character n-grams beat word n-grams on German in
        # cross-validation (compounds, misspellings) and adding words did not help either language.
        self._chars = HashingVectorizer(
            analyzer="char_wb", ngram_range=(2, 5), n_features=CHAR_FEATURES, alternate_sign=False,
            norm="l2", lowercase=False,
        )

    @property
    def width(self) -> int:
        """Return the number of feature columns."""
        return CHAR_FEATURES + 2 * len(GROUPS) + len(LANGS)

    def transform(self, texts: list[str], lang: str) -> sp.csr_matrix:
        """Return features (n, width): character n-grams, capped cue counts per language, language flag."""
        cues = np.minimum(np.array([cue_counts(t, lang) for t in texts], dtype=np.float32).reshape(len(texts), -1), CUE_CAP) / CUE_CAP
        # Cue columns are kept apart per language, so EN and DE cues get their own weights.
        dense = np.zeros((len(texts), 2 * len(GROUPS) + len(LANGS)), dtype=np.float32)
        offset = LANGS.index(lang) * len(GROUPS)
        dense[:, offset:offset + len(GROUPS)] = cues * self.cue_weight
        dense[:, 2 * len(GROUPS) + LANGS.index(lang)] = 1.0
        return sp.hstack([self._chars.transform(texts), sp.csr_matrix(dense)], format="csr")


class StateSource(Protocol):
    """What the states weights need from the sentiment model (nlp.e5_sentiment.FineTunedSentimentModel)."""

    path: Path  # the sentiment file, whose digest the weights record

    @property
    def model_version(self) -> str: ...

    def states_for(self, texts: list[str], lang: str) -> np.ndarray: ...


@dataclass(frozen=True, slots=True)
class IntentWeights:
    """The trained linear model as plain arrays; only non-zero feature columns are stored."""

    columns: np.ndarray  # (k,) int32 feature columns with any non-zero weight
    coef: np.ndarray  # (n_labels, k) float32
    intercept: np.ndarray  # (n_labels,) float32
    lexicon: str  # lexicon_digest() at training time
    # (n_labels, hidden) weights on the sentiment encoder's pooled state, standardisation folded in
    state_coef: np.ndarray | None = None
    sentiment: str = ""  # nlp.e5_shared.sentiment_digest of the file whose states were read

    def logits(self, features: sp.csr_matrix, states: np.ndarray | None = None) -> np.ndarray:
        """Return class scores (n, n_labels) for a feature matrix (and pooled states, for state weights)."""
        scores = np.asarray(features[:, self.columns] @ self.coef.T) + self.intercept
        if self.state_coef is not None:
            if states is None:
                raise ValueError("these intent weights read the sentiment encoder's states; pass them")
            scores += states @ self.state_coef.T
        return scores

    def save(self, path: Path) -> None:
        """Write the weights as a compressed npz (no pickle)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        extra = {} if self.state_coef is None else {"state_coef": self.state_coef.astype(np.float32), "sentiment": np.array(self.sentiment)}
        np.savez_compressed(
            path, columns=self.columns.astype(np.int32), coef=self.coef.astype(np.float32),
            intercept=self.intercept.astype(np.float32), labels=np.array(LABELS), lexicon=np.array(self.lexicon),
            features=np.array(FEATURE_SPEC), **extra,
        )

    @classmethod
    def from_dense(
        cls, coef: np.ndarray, intercept: np.ndarray, state_coef: np.ndarray | None = None, sentiment: str = "",
    ) -> IntentWeights:
        """Keep only the feature columns that carry weight (hashed columns never seen stay zero)."""
        columns = np.flatnonzero(np.abs(coef).max(axis=0) > 1e-6).astype(np.int32)
        states = None if state_coef is None else state_coef.astype(np.float32)
        return cls(columns, coef[:, columns].astype(np.float32), intercept.astype(np.float32), lexicon_digest(), states, sentiment)

    @classmethod
    def load(cls, path: Path) -> IntentWeights:
        """Read weights written by `save`, refusing ones built for other features or labels."""
        with np.load(path, allow_pickle=False) as data:
            if tuple(str(x) for x in data["labels"]) != LABELS:
                raise ValueError(f"{path}: label order {list(data['labels'])} is not {list(LABELS)}")
            if str(data["features"]) != FEATURE_SPEC:
                raise ValueError(f"{path}: built for features {data['features']}, nlp/intent.py now makes {FEATURE_SPEC}; retrain")
            states = data["state_coef"] if "state_coef" in data.files else None
            sentiment = str(data["sentiment"]) if "sentiment" in data.files else ""
            return cls(data["columns"], data["coef"], data["intercept"], str(data["lexicon"]), states, sentiment)


@dataclass(frozen=True, slots=True)
class IntentResult:
    """A label and its probability under the model."""

    label: str
    score: float


class IntentModel:
    """Classify the purchase intent of EN/DE posts; the weights load on first use.

    With `states` (the fine-tuned sentiment model), the weights in STATES_MODEL_PATH read each
    post's pooled encoder state from it as well."""

    languages: tuple[str, ...] = LANGS

    def __init__(self, model_path: Path | None = None, states: StateSource | None = None) -> None:
        self.model_path = model_path or (STATES_MODEL_PATH if states is not None else MODEL_PATH)
        self.states = states
        self._features = IntentFeatures()
        self._weights: IntentWeights | None = None

    @property
    def model_name(self) -> str:
        """Return the name recorded on annotation rows."""
        return STATES_MODEL_NAME if self.states is not None else MODEL_NAME

    @cached_property
    def model_version(self) -> str:
        """Return "linear.<sha8 of the artefact>+lex.<sha8 of the lexicon>", plus the sentiment
        model's version when its states are read: changes with any of them."""
        digest = hashlib.sha256(self.model_path.read_bytes()).hexdigest()[:8] if self.model_path.exists() else "missing"
        reads = f"+states.{self.states.model_version}" if self.states is not None else ""
        return f"linear.{digest}+lex.{lexicon_digest()}{reads}"

    def probabilities(self, texts: list[str], lang: str, states: np.ndarray | None = None) -> np.ndarray:
        """Return class probabilities (n, len(LABELS)) for already normalised texts in `lang`
        (and their pooled states, for state weights)."""
        logits = self._load().logits(self._features.transform(texts, lang), states)
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)

    def predict(self, texts: list[str], lang: str) -> list[IntentResult | None]:
        """Return one result per text in `lang`; None for unsupported languages and texts too thin to judge."""
        results: list[IntentResult | None] = [None] * len(texts)
        if lang not in self.languages:
            return results
        normalised = [normalise(safe_text(t)) for t in texts]
        keep = [i for i, t in enumerate(normalised) if letter_count(t.replace("@user", "").replace("http", "")) >= MIN_LETTERS]
        if not keep:
            return results
        # The states are of the texts as the sentiment step read them, not intent's lower-cased cut.
        states = self.states.states_for([texts[i] for i in keep], lang) if self.states is not None else None
        probs = self.probabilities([normalised[i] for i in keep], lang, states)
        best = probs.argmax(axis=1)
        for row, i in enumerate(keep):
            results[i] = IntentResult(LABELS[best[row]], float(probs[row, best[row]]))
        return results

    def _load(self) -> IntentWeights:
        if self._weights is None:
            if not self.model_path.exists():
                raise ModelMissingError(
                    f"intent model {self.model_path} is missing; rebuild it with "
                    "`python -m nlp.train_intent` (trains from nlp/data/intent/intent_labelled.csv)."
                )
            weights = IntentWeights.load(self.model_path)
            if weights.lexicon != lexicon_digest():
                raise ModelMissingError(
                    f"intent model {self.model_path} was trained with another cue lexicon "
                    f"({weights.lexicon}, now {lexicon_digest()}); rebuild it with `python -m nlp.train_intent`."
                )
            if self.states is not None:
                self._check_states(weights)
            self._weights = weights
        return self._weights

    def _check_states(self, weights: IntentWeights) -> None:
        """Refuse weights without state coefficients, or fitted on another sentiment model's states."""
        from nlp.e5_shared import sentiment_digest  # noqa: PLC0415 - torch-backed side, loaded only with states

        rebuild = "rebuild it with `python -m nlp.train_intent` (`resonanz train intent`)"
        if weights.state_coef is None:
            raise ModelMissingError(f"intent model {self.model_path} has no weights for the sentiment encoder's states; {rebuild}")
        if self.states.path.is_file() and weights.sentiment != sentiment_digest(self.states.path):
            raise ModelMissingError(
                f"intent model {self.model_path} was trained on the states of another sentiment model than "
                f"{self.states.path}; {rebuild}"
            )
