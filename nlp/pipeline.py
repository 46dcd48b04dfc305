"""Enrich batches of posts: language, sentiment, entities and brand mentions, EN and DE."""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from nlp.brands import BrandConfig, BrandMatcher
from nlp.entities import EntityExtractor
from nlp.errors import ModelMissingError
from nlp.language import MODEL_NAME as LANGUAGE_MODEL
from nlp.language import LanguageDetector, LanguageGuess
from nlp.records import Annotation, BrandMention, EntitySpan, Enrichment, PostText
from nlp.sentiment import MODEL_NAME as SENTIMENT_MODEL
from nlp.sentiment import SentimentModel, SentimentResult
from nlp.text import MAX_CHARS, safe_text

log = logging.getLogger(__name__)

ENTITIES_MODEL = "spacy-entities"
RELEVANCE_MODEL = "brand-gazetteer"


def _count_per_post(rows: Sequence[Any]) -> dict[tuple[str, str], int]:
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for row in rows:
        counts[(row.source, row.post_id)] += 1
    return counts


class Enricher:
    """Run every enrich model over batches of posts; each model loads once, on first use."""

    def __init__(self, brands: Sequence[BrandConfig]) -> None:
        self._brands = list(brands)
        self._language = LanguageDetector()
        self._sentiment = SentimentModel()
        self._entities = EntityExtractor(self._brands)
        self._matcher = BrandMatcher(self._brands)
        # Seconds spent per model since construction, for bench/enrich.py.
        self.timings: dict[str, float] = defaultdict(float)

    def model_versions(self) -> dict[str, str]:
        """Return task -> "model_name@version" for every task this enricher annotates per post.

        Every post gets one annotation row per task, so the warehouse can tell which posts a
        changed model (or brand list) affects. "entities" covers the EN model and the DE/other
        ruler at once; "relevance" is the brand gazetteer (its version hashes the brand list).
        """
        return {
            "language": f"{LANGUAGE_MODEL}@{self._language.model_version}",
            "sentiment": f"{SENTIMENT_MODEL}@{self._sentiment.model_version}",
            "entities": f"{ENTITIES_MODEL}@{self._entities_version()}",
            "relevance": f"{RELEVANCE_MODEL}@{self._entities.brand_digest}",
        }

    def enrich(self, posts: Sequence[PostText]) -> Enrichment:
        """Return annotations, entities and brand mentions for `posts` (never raises on bad text)."""
        texts = [safe_text(post.text) for post in posts]
        languages = self._timed("language", self._detect_languages, posts, texts)
        sentiments = self._timed("sentiment", self._classify, texts, languages)
        out = Enrichment()
        out.entities = self._timed("entities", self._extract_entities, posts, texts, languages)
        out.brand_mentions = self._timed("brands", self._match_brands, posts, texts, sentiments)
        entity_counts = _count_per_post(out.entities)
        brand_counts = _count_per_post(out.brand_mentions)
        entities_version = self._entities_version()
        for post, guess, sentiment in zip(posts, languages, sentiments):
            key = (post.source, post.post_id)
            out.annotations.append(self._language_row(post, guess))
            out.annotations.append(self._sentiment_row(post, sentiment))
            out.annotations.append(Annotation(
                post.source, post.post_id, "entities", None, float(entity_counts.get(key, 0)),
                ENTITIES_MODEL, entities_version))
            mentions = brand_counts.get(key, 0)
            out.annotations.append(Annotation(
                post.source, post.post_id, "relevance", "relevant" if mentions else "not_relevant",
                float(mentions), RELEVANCE_MODEL, self._entities.brand_digest))
        return out

    def _entities_version(self) -> str:
        parts = []
        for lang in ("en", "de", "xx"):
            name, version = self._entities.model(lang)
            parts.append(f"{lang}:{name}@{version}")
        return ";".join(parts)

    def _timed(self, name: str, step: Any, *args: Any) -> Any:
        started = time.perf_counter()
        try:
            return step(*args)
        finally:
            self.timings[name] += time.perf_counter() - started

    def _detect_languages(self, posts: Sequence[PostText], texts: list[str]) -> list[LanguageGuess]:
        return [self._language.detect(text, post.lang_hint) for post, text in zip(posts, texts)]

    def _classify(self, texts: list[str], languages: list[LanguageGuess]) -> list[SentimentResult | None]:
        results: list[SentimentResult | None] = [None] * len(texts)
        by_lang: dict[str, list[int]] = defaultdict(list)
        for i, guess in enumerate(languages):
            by_lang[guess.lang].append(i)
        supported = self._sentiment.languages
        for lang, indices in by_lang.items():
            if lang not in supported:
                continue  # no trained head for this language: sentiment stays unknown
            batch = [texts[i][:MAX_CHARS] for i in indices]
            for i, result in zip(indices, _per_item_on_error(self._sentiment.predict, batch, lang)):
                results[i] = result
        return results

    def _extract_entities(
        self, posts: Sequence[PostText], texts: list[str], languages: list[LanguageGuess]
    ) -> list[EntitySpan]:
        by_lang: dict[str, list[int]] = defaultdict(list)
        for i, guess in enumerate(languages):
            by_lang["en" if guess.lang == "en" else "de" if guess.lang == "de" else "xx"].append(i)
        rows: list[EntitySpan] = []
        for lang, indices in sorted(by_lang.items()):
            name, model_version = self._entities.model(lang)
            found = _per_item_on_error(self._entities.extract, [texts[i][:MAX_CHARS] for i in indices], lang)
            for i, spans in zip(indices, found):
                post = posts[i]
                rows.extend(
                    EntitySpan(post.source, post.post_id, s.start_char, s.end_char, s.label, s.text, name, model_version)
                    for s in spans
                )
        return rows

    def _match_brands(
        self, posts: Sequence[PostText], texts: list[str], sentiments: list[SentimentResult | None]
    ) -> list[BrandMention]:
        rows: list[BrandMention] = []
        for post, text, sentiment in zip(posts, texts, sentiments):
            # Brand-level sentiment is the post's sentiment until a targeted model exists.
            label = sentiment.label if sentiment else None
            rows.extend(
                BrandMention(post.source, post.post_id, m.brand, m.kind, m.matched_text, m.start_char, label)
                for m in self._matcher.find(text)
            )
        return rows

    def _language_row(self, post: PostText, guess: LanguageGuess) -> Annotation:
        version = self._language.model_version
        return Annotation(post.source, post.post_id, "language", guess.lang, guess.score, LANGUAGE_MODEL, version)

    def _sentiment_row(self, post: PostText, result: SentimentResult | None) -> Annotation:
        version = self._sentiment.model_version
        label, score = (result.label, result.score) if result else (None, None)
        return Annotation(post.source, post.post_id, "sentiment", label, score, SENTIMENT_MODEL, version)


def _per_item_on_error(step: Any, batch: list[str], lang: str) -> list[Any]:
    """Run `step` on the batch; if it fails, retry text by text so one bad post costs only itself."""
    try:
        return step(batch, lang)
    except ModelMissingError:
        raise  # a missing model is a setup problem, not bad input: say so once, loudly
    except Exception:
        log.warning("%s failed on a batch of %d %s texts; retrying one by one", step.__qualname__, len(batch), lang)
    results: list[Any] = []
    for text in batch:
        try:
            results.extend(step([text], lang))
        except Exception as exc:  # noqa: BLE001 - isolate the one bad text, keep the batch
            log.warning("%s skipped one text (%d chars): %s", step.__qualname__, len(text), exc)
            results.append(None if step.__name__ == "predict" else [])
    return results
