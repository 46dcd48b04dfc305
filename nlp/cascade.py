"""A sentiment cascade: the fast static student decides when it is sure, e5 decides the rest.

Most posts are easy ("love it 😍", "worst service ever"); the student's calibrated probability
says which ones. Only posts below the threshold pay for the transformer, the fine-tuned e5 model
(the frozen one without PyTorch). Thresholds are chosen per language on validation rows by
`nlp.distill` against that model and stored in cascade.json beside the student, with its version.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Protocol

import numpy as np
from sklearn.metrics import f1_score, recall_score

from nlp.e5_torch import torch_available
from nlp.sentiment import SentimentModel, SentimentResult
from nlp.static_embed import STUDENT_DIR, StaticSentimentModel

log = logging.getLogger(__name__)

THRESHOLDS_PATH = STUDENT_DIR / "cascade.json"
DEFAULT_OPERATING_POINT = "balanced"
MODEL_NAME = "sentiment-cascade"
DEFAULT_MODE = "finetuned"
MODES = ("finetuned", "e5", "student", "cascade:speed", "cascade:fast", "cascade:balanced", "cascade:quality")


class SentimentClassifier(Protocol):
    """What the Enricher needs from a sentiment model."""

    @property
    def model_version(self) -> str: ...

    @property
    def languages(self) -> tuple[str, ...]: ...

    def predict(self, texts: list[str], lang: str) -> list[SentimentResult | None]: ...


@dataclass
class RoutingCounts:
    """How many texts each model decided, per language, since construction."""

    fast: dict[str, int] = field(default_factory=dict)
    accurate: dict[str, int] = field(default_factory=dict)

    def add(self, lang: str, fast: int, accurate: int) -> None:
        self.fast[lang] = self.fast.get(lang, 0) + fast
        self.accurate[lang] = self.accurate.get(lang, 0) + accurate

    def accurate_share(self) -> float:
        """Return the share of texts that went to the accurate model (0 when none were seen)."""
        total = sum(self.fast.values()) + sum(self.accurate.values())
        return sum(self.accurate.values()) / total if total else 0.0


class CascadeSentiment:
    """Classify with `fast`; send texts whose top probability is below the threshold to `accurate`."""

    model_name = MODEL_NAME

    def __init__(
        self, fast: SentimentClassifier, accurate: SentimentClassifier, threshold: float | Mapping[str, float]
    ) -> None:
        self.fast = fast
        self.accurate = accurate
        self.thresholds = dict(threshold) if isinstance(threshold, Mapping) else {}
        self.default_threshold = 1.0 if isinstance(threshold, Mapping) else float(threshold)
        self.routing = RoutingCounts()

    @classmethod
    def from_operating_point(
        cls, name: str = DEFAULT_OPERATING_POINT, path: Path = THRESHOLDS_PATH,
        fast: SentimentClassifier | None = None, accurate: SentimentClassifier | None = None, precision: str = "auto",
    ) -> CascadeSentiment:
        """Return the cascade with the per-language thresholds stored under `name` in cascade.json
        (`precision` is the bundled accurate model's encoder precision, when `accurate` is not given)."""
        stored = json.loads(path.read_text(encoding="utf-8"))
        points = stored["operating_points"]
        if name not in points:
            raise ValueError(f"unknown cascade operating point {name!r}; choose one of {sorted(points)}")
        thresholds = {lang: float(v["threshold"]) for lang, v in points[name].items()}
        accurate = accurate or build_sentiment_model(DEFAULT_MODE, precision=precision)
        chosen_for = stored.get("accurate_model")
        # The encoder's precision moves too few answers to move a threshold: compare the weights.
        if chosen_for and chosen_for != getattr(accurate, "weights_version", accurate.model_version):
            log.warning("the cascade thresholds in %s were chosen for %s, not %s: rerun "
                        "`python -m nlp.distill --thresholds-only` to fit them to this model",
                        path, chosen_for, accurate.model_version)
        return cls(fast or StaticSentimentModel(), accurate, thresholds)

    def threshold(self, lang: str) -> float:
        """Return the confidence the fast model needs in `lang` to decide alone."""
        return self.thresholds.get(lang, self.default_threshold)

    @cached_property
    def model_version(self) -> str:
        """Return "cascade(<fast>|<accurate>|t=en:0.80,de:0.85)": changes with either model or a threshold."""
        if self.thresholds:
            shown = ",".join(f"{k}:{v:.2f}" for k, v in sorted(self.thresholds.items()))
        else:
            shown = f"{self.default_threshold:.2f}"
        return f"cascade({self.fast.model_version}|{self.accurate.model_version}|t={shown})"

    @property
    def languages(self) -> tuple[str, ...]:
        """Return every language either model handles (the accurate one covers the fast one's gaps)."""
        return tuple(dict.fromkeys((*self.accurate.languages, *self.fast.languages)))

    def predict(self, texts: list[str], lang: str) -> list[SentimentResult | None]:
        """Return one result per text: the fast model's when confident, else the accurate model's."""
        if lang not in self.fast.languages:
            results = self.accurate.predict(texts, lang) if lang in self.accurate.languages else [None] * len(texts)
            self.routing.add(lang, 0, sum(r is not None for r in results))
            return results
        results = self.fast.predict(texts, lang)
        cut = self.threshold(lang)
        unsure = [i for i, r in enumerate(results) if r is not None and r.score < cut]
        if unsure and lang in self.accurate.languages:
            for i, result in zip(unsure, self.accurate.predict([texts[i] for i in unsure], lang)):
                results[i] = result
        decided = sum(r is not None for r in results)
        self.routing.add(lang, decided - len(unsure), len(unsure))
        return results


def build_sentiment_model(mode: str = DEFAULT_MODE, cache_entries: int = 0, precision: str = "auto") -> SentimentClassifier:
    """Return the sentiment model for `mode` (see MODES), wrapped in a text cache if `cache_entries` > 0.

    `precision` is the fine-tuned e5 encoder's ([nlp] e5_precision), where the mode runs it.

    "finetuned" needs PyTorch; without it the frozen-e5 model ("e5") runs, with one warning.
    """
    if mode == "finetuned" and not torch_available():
        log.warning("PyTorch is not installed, so sentiment uses the frozen e5 model (sentiment_mode = \"e5\"); "
                    "install the [hf] extra for the fine-tuned one, or set sentiment_mode to silence this")
        mode = "e5"
    if mode == "finetuned":
        from nlp.e5_sentiment import (
            FineTunedSentimentModel,  # torch-backed; imported only when chosen
        )

        model: SentimentClassifier = FineTunedSentimentModel(precision=precision)
    elif mode == "e5":
        model = SentimentModel()
    elif mode == "student":
        model = StaticSentimentModel()
    elif mode.startswith("cascade:"):
        model = CascadeSentiment.from_operating_point(mode.split(":", 1)[1], precision=precision)
    else:
        raise ValueError(f"unknown sentiment mode {mode!r}; choose one of {', '.join(MODES)}")
    if cache_entries > 0:
        from nlp.text_cache import (
            CachedSentiment,  # text_cache imports this module's Protocol
        )

        model = CachedSentiment(model, max_entries=cache_entries)
    return model


def cascade_predictions(fast_probs: np.ndarray, accurate_pred: np.ndarray, threshold: float) -> np.ndarray:
    """Return the cascade's class ids given the fast model's probabilities and the accurate model's ids."""
    return np.where(fast_probs.max(axis=1) >= threshold, fast_probs.argmax(axis=1), accurate_pred)


def threshold_curve(
    fast_probs: np.ndarray, accurate_pred: np.ndarray, labels: np.ndarray, metric: str = "f1"
) -> list[dict[str, float]]:
    """Return (threshold, share sent to the accurate model, macro metric) for thresholds 0.35..1.0."""
    scorer = recall_score if metric == "recall" else f1_score
    rows = []
    for threshold in np.round(np.arange(0.35, 1.0001, 0.025), 3):
        predicted = cascade_predictions(fast_probs, accurate_pred, threshold)
        rows.append({
            "threshold": float(threshold),
            "accurate_share": round(float((fast_probs.max(axis=1) < threshold).mean()), 4),
            "score": round(float(scorer(labels, predicted, average="macro")), 4),
        })
    return rows


def choose_threshold(curve: list[dict[str, float]], tolerance: float) -> dict[str, float]:
    """Return the cheapest point of `curve` scoring within `tolerance` of its best score."""
    best = max(row["score"] for row in curve)
    good = [row for row in curve if row["score"] >= best - tolerance]
    return min(good, key=lambda row: (row["accurate_share"], -row["score"]))
