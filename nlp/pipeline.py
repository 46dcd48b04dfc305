"""Enrich batches of posts: language, sentiment, purchase intent, entities and brand mentions, EN and DE."""

from __future__ import annotations

import gc
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from nlp.brands import BrandConfig, BrandMatch, BrandMatcher
from nlp.cascade import build_sentiment_model
from nlp.e5_torch import torch_available
from nlp.entities import EntityExtractor
from nlp.errors import ModelMissingError
from nlp.hf_models import (
    INTENT_LABELS,
    EntityRouter,
    HFModelConfig,
    HFSequenceClassifier,
    HFTokenClassifier,
    is_bundled,
)
from nlp.intent import MODEL_NAME as INTENT_MODEL
from nlp.intent import IntentModel, IntentResult
from nlp.language import MODEL_NAME as LANGUAGE_MODEL
from nlp.language import LanguageDetector, LanguageGuess
from nlp.records import Annotation, BrandMention, Enrichment, EntitySpan, PostText, Task
from nlp.sentiment import MODEL_NAME as SENTIMENT_MODEL
from nlp.sentiment import SentimentModel, SentimentResult
from nlp.targeted import MentionPlan, TargetedSentiment, wanted_texts
from nlp.text import MAX_CHARS, safe_text

log = logging.getLogger(__name__)

ENTITIES_MODEL = "spacy-entities"
RELEVANCE_MODEL = "brand-gazetteer"
# Which posts the sentiment and entity models read ([nlp] model_scope): every post, or only the
# posts that name a tracked brand. Language, relevance, brand matches and intent cover every post.
MODEL_SCOPES = ("all_posts", "brand_posts")
INTENT_MODES = ("states", "ngrams")
# Posts handed to `Enricher.enrich` at a time by the enrich task (and bench/enrich.py). The e5 pass
# sorts each language's texts by length and fills batches up to a piece budget, so a wider call pads
# less and cuts fewer half-empty batches: on the 2,000 posts of the bench.enrich mix, calls of 256
# posts padded to 71,622 pieces in 82 batches, calls of 1024 to 65,284 in 68, for 62,210 real pieces
# (bench.encoder_profile). 256 posts a call had run 1.08-1.19x as fast as 100; bench.enrich has
# 1024 against 256 (shared_calls_256). Peak memory did not move (~1.4 GB, the models).
POSTS_PER_CALL = 1024


@contextmanager
def models_out_of_gc() -> Iterator[Callable[[], None]]:
    """Yield a function to call once the models are loaded: from then until the block ends, the
    objects alive at that call are kept out of the garbage collector's full passes.

    Loaded models are ~330,000 Python objects (spaCy's vocabularies, torch modules, the
    tokeniser), and each full pass walked them all: ~0.15 s, which landed in whichever step of a
    500-post batch was running (bench.enrich). `gc.freeze` moves them to a generation no pass
    visits; `gc.unfreeze` at the end hands them back.
    """
    frozen = False

    def loaded() -> None:
        nonlocal frozen
        if not frozen:
            gc.freeze()
            frozen = True

    try:
        yield loaded
    finally:
        if frozen:
            gc.unfreeze()


def _count_per_post(rows: Sequence[Any]) -> dict[tuple[str, str], int]:
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for row in rows:
        counts[(row.source, row.post_id)] += 1
    return counts


class Enricher:
    """Run every enrich model over batches of posts; each model loads once, on first use."""

    def __init__(
        self,
        brands: Sequence[BrandConfig],
        sentiment: SentimentModel | HFSequenceClassifier | None = None,
        entity_models: Mapping[str, HFTokenClassifier] | None = None,
        intent: IntentModel | HFSequenceClassifier | None = None,
        language: LanguageDetector | None = None,
        ner_engine: str = "shared",
        e5_precision: str = "auto",
        model_scope: str = "all_posts",
        intent_mode: str = "states",
    ) -> None:
        """Use the bundled models unless a replacement is given (see `build_enricher` and docs/models.md).

        `entity_models` maps a language ("en", "de") to the token classifier used for it; other
        languages keep the bundled extractor, whose engine `ner_engine` picks ("e5", "spacy" or
        "shared", which reads the fine-tuned sentiment model's encoder states); `e5_precision`
        is how the bundled e5 encoders run ("auto", "fp32" or "bf16", see nlp.e5_torch.PRECISIONS);
        `model_scope` is which posts the sentiment and entity models read (MODEL_SCOPES);
        `intent_mode` whether the bundled intent model also reads the sentiment pass's states (INTENT_MODES).
        """
        if model_scope not in MODEL_SCOPES:
            raise ValueError(f"model_scope must be one of {', '.join(MODEL_SCOPES)}, not {model_scope!r}")
        if intent_mode not in INTENT_MODES:
            raise ValueError(f"intent_mode must be one of {', '.join(INTENT_MODES)}, not {intent_mode!r}")
        self._brands = list(brands)
        self._brand_posts_only = model_scope == "brand_posts"
        self._language = language if language is not None else LanguageDetector()
        self._sentiment = sentiment if sentiment is not None else build_sentiment_model(precision=e5_precision)
        bundled_entities = EntityExtractor(self._brands, engine=ner_engine, sentiment=self._sentiment, precision=e5_precision)
        self._entities = EntityRouter(bundled_entities, entity_models) if entity_models else bundled_entities
        self._intent = intent if intent is not None else self._bundled_intent(intent_mode)
        # Names recorded on annotation rows: a configured Hugging Face model is "hf/<directory>".
        self._sentiment_name = getattr(self._sentiment, "model_name", SENTIMENT_MODEL)
        self._intent_name = getattr(self._intent, "model_name", INTENT_MODEL)
        self._matcher = BrandMatcher(self._brands)
        # Per-brand sentiment: the clause around each mention, judged by the same sentiment model.
        self._targeted = TargetedSentiment(self._sentiment)
        # Under "brand_posts" the sentiment and entity answers depend on the brand list too: a post
        # that names a newly tracked brand must be read again, so the list is part of their versions.
        self._scope_suffix = f"+brand-posts.{self._entities.brand_digest}" if self._brand_posts_only else ""
        # Seconds spent per model since construction, for bench/enrich.py.
        self.timings: dict[str, float] = defaultdict(float)

    def _bundled_intent(self, mode: str) -> IntentModel:
        """The intent model that reads the fine-tuned sentiment pass's pooled states where that pass
        runs on every post (mode "states"); else the n-gram weights alone (no second encoder pass)."""
        # A missing states file is not a reason to switch models quietly (and re-read every post
        # under another version): IntentModel stops with a message naming the command that rebuilds it.
        if mode == "ngrams" or self._brand_posts_only or not torch_available():
            return IntentModel()
        from nlp.e5_sentiment import finetuned_source  # noqa: PLC0415 - torch-backed

        source = finetuned_source(self._sentiment)
        if source is None:
            return IntentModel()
        source.keep_pooled_states()  # from the first batch on: intent runs after sentiment
        return IntentModel(states=source)

    def model_versions(self) -> dict[str, str]:
        """Return task -> "model_name@version" for every task this enricher annotates per post.

        Every post gets one annotation row per task, so the warehouse can tell which posts a
        changed model (or brand list) affects. "entities" covers the EN model and the DE/other
        ruler at once; "relevance" is the brand gazetteer (its version hashes the brand list).
        """
        return {
            "language": f"{LANGUAGE_MODEL}@{self._language.model_version}",
            "sentiment": f"{self._sentiment_name}@{self._sentiment_version()}",
            "intent": f"{self._intent_name}@{self._intent.model_version}",
            "entities": f"{ENTITIES_MODEL}@{self._entities_version()}",
            "relevance": f"{RELEVANCE_MODEL}@{self._entities.brand_digest}",
        }

    def enrich(self, posts: Sequence[PostText]) -> Enrichment:
        """Return annotations, entities and brand mentions for `posts` (never raises on bad text)."""
        texts = [safe_text(post.text) for post in posts]
        languages = self._timed("language", self._detect_languages, posts, texts)
        matches = self._timed("brands", lambda: [self._matcher.find(text) for text in texts])
        plans = self._timed("brands", self._plan_mentions, texts, languages, matches)
        # Posts the sentiment and entity models read; the others keep no label and no entities.
        deep = [bool(found) or not self._brand_posts_only for found in matches]
        # The clauses per-brand sentiment needs ride along in the posts' model call (one call per language).
        sentiments, judged = self._timed("sentiment", self._classify, self._sentiment, texts, languages, deep, wanted_texts(plans))
        intents, _ = self._timed("intent", self._classify, self._intent, texts, languages)
        out = Enrichment()
        out.entities = self._timed("entities", self._extract_entities, posts, texts, languages, deep)
        out.brand_mentions = self._timed("brands", self._brand_rows, posts, matches, plans, judged, sentiments)
        entity_counts = _count_per_post(out.entities)
        brand_counts = _count_per_post(out.brand_mentions)
        entities_version = self._entities_version()
        for post, guess, sentiment, intent in zip(posts, languages, sentiments, intents):
            key = (post.source, post.post_id)
            out.annotations.append(self._language_row(post, guess))
            out.annotations.append(self._label_row(post, "sentiment", sentiment, self._sentiment_name, self._sentiment_version()))
            out.annotations.append(self._label_row(post, "intent", intent, self._intent_name, self._intent.model_version))
            out.annotations.append(Annotation(
                post.source, post.post_id, "entities", None, float(entity_counts.get(key, 0)),
                ENTITIES_MODEL, entities_version))
            mentions = brand_counts.get(key, 0)
            out.annotations.append(Annotation(
                post.source, post.post_id, "relevance", "relevant" if mentions else "not_relevant",
                float(mentions), RELEVANCE_MODEL, self._entities.brand_digest))
        return out

    def _sentiment_version(self) -> str:
        return self._sentiment.model_version + self._scope_suffix

    def _entities_version(self) -> str:
        parts = []
        for lang in ("en", "de", "xx"):
            name, version = self._entities.model(lang)
            parts.append(f"{lang}:{name}@{version}")
        return ";".join(parts) + self._scope_suffix

    def _timed(self, name: str, step: Any, *args: Any) -> Any:
        started = time.perf_counter()
        try:
            return step(*args)
        finally:
            self.timings[name] += time.perf_counter() - started

    def _detect_languages(self, posts: Sequence[PostText], texts: list[str]) -> list[LanguageGuess]:
        return self._language.detect_many(texts, [post.lang_hint for post in posts])

    def _classify(
        self, model: Any, texts: list[str], languages: list[LanguageGuess], wanted: list[bool] | None = None,
        extra: Mapping[str, list[str]] | None = None,
    ) -> tuple[list[Any], dict[str, dict[str, Any]]]:
        """Run a per-language classifier (sentiment or intent) over the `wanted` texts it has a
        language for, and over `extra` texts per language; return the posts' results and, per
        language, the extra texts' results by text."""
        results: list[Any] = [None] * len(texts)
        by_lang: dict[str, list[int]] = defaultdict(list)
        for i, guess in enumerate(languages):
            if wanted is None or wanted[i]:
                by_lang[guess.lang].append(i)
        extra = extra or {}
        judged: dict[str, dict[str, Any]] = {}
        supported = model.languages
        for lang in [*by_lang, *(lang for lang in extra if lang not in by_lang)]:
            if lang not in supported:
                continue  # no trained model for this language: the label stays unknown
            indices, added = by_lang.get(lang, []), extra.get(lang, [])
            found = _per_item_on_error(model.predict, [texts[i][:MAX_CHARS] for i in indices] + added, lang)
            for i, result in zip(indices, found):
                results[i] = result
            judged[lang] = dict(zip(added, found[len(indices):]))
        return results, judged

    def _extract_entities(
        self, posts: Sequence[PostText], texts: list[str], languages: list[LanguageGuess], wanted: list[bool]
    ) -> list[EntitySpan]:
        by_lang: dict[str, list[int]] = defaultdict(list)
        for i, guess in enumerate(languages):
            if wanted[i]:
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

    def _plan_mentions(
        self, texts: list[str], languages: list[LanguageGuess], found: list[list[BrandMatch]]
    ) -> list[MentionPlan | None]:
        """Per post with brand mentions, what per-brand sentiment needs judged (None: no mentions)."""
        plans: list[MentionPlan | None] = []
        for text, guess, matches in zip(texts, languages, found):
            if not matches:
                plans.append(None)
                continue
            spans = [(m.start_char, m.end_char) for m in matches]
            try:
                # One answer per mention: "love Lyft, but Uber cancelled" gives Lyft and Uber apart.
                plans.append(self._targeted.plan(text[:MAX_CHARS], guess.lang, spans))
            except ModelMissingError:
                raise
            except Exception as exc:  # noqa: BLE001 - one odd post keeps the post-level answer
                log.warning("targeted sentiment skipped one post (%d chars): %s", len(text), exc)
                plans.append(MentionPlan(guess.lang, len(spans), "post"))
        return plans

    def _brand_rows(
        self, posts: Sequence[PostText], found: list[list[BrandMatch]], plans: list[MentionPlan | None],
        judged: dict[str, dict[str, SentimentResult | None]], sentiments: list[SentimentResult | None],
    ) -> list[BrandMention]:
        rows: list[BrandMention] = []
        for post, matches, plan, sentiment in zip(posts, found, plans, sentiments):
            if plan is None:
                continue
            targeted = plan.resolve(judged.get(plan.lang, {}), sentiment)
            rows.extend(
                BrandMention(post.source, post.post_id, m.brand, m.kind, m.matched_text, m.start_char,
                             result.label if result else None)
                for m, result in zip(matches, targeted)
            )
        return rows

    def _language_row(self, post: PostText, guess: LanguageGuess) -> Annotation:
        version = self._language.model_version
        return Annotation(post.source, post.post_id, "language", guess.lang, guess.score, LANGUAGE_MODEL, version)

    def _label_row(self, post: PostText, task: Task, result: Any, name: str, version: str) -> Annotation:
        label, score = (result.label, result.score) if result else (None, None)
        return Annotation(post.source, post.post_id, task, label, score, name, version)


def _per_item_on_error(step: Any, batch: list[str], lang: str) -> list[Any]:
    """Run `step` on the batch; if it fails, retry text by text so one bad post costs only itself."""
    try:
        return step(batch, lang)
    except ModelMissingError:
        raise  # a missing model is a setup problem, not bad input: say so once, loudly
    except Exception:  # noqa: BLE001 - fall back to one by one, below
        log.warning("%s failed on a batch of %d %s texts; retrying one by one", step.__qualname__, len(batch), lang)
    results: list[Any] = []
    for text in batch:
        try:
            results.extend(step([text], lang))
        except Exception as exc:  # noqa: BLE001 - isolate the one bad text, keep the batch
            log.warning("%s skipped one text (%d chars): %s", step.__qualname__, len(text), exc)
            results.append(None if step.__name__ == "predict" else [])
    return results


def build_enricher(brands: Sequence[BrandConfig], config: HFModelConfig | None = None) -> Enricher:
    """Build an Enricher with the models the `[nlp]` configuration names (bundled ones by default)."""
    if config is None:
        return Enricher(brands)
    if is_bundled(config.sentiment_model):
        sentiment: Any = build_sentiment_model(config.sentiment_mode, config.sentiment_cache_entries, config.e5_precision)
    else:
        sentiment = HFSequenceClassifier(
            config.sentiment_model, labels=config.sentiment_labels, languages=config.sentiment_languages,
        )
    intent = None
    if not is_bundled(config.intent_model):
        intent = HFSequenceClassifier(
            config.intent_model, targets=INTENT_LABELS, labels=config.intent_labels,
            languages=config.intent_languages, result=IntentResult, setting="intent_labels",
        )
    # One model configured for both languages is loaded once.
    token_models: dict[str, HFTokenClassifier] = {}
    entity_models: dict[str, HFTokenClassifier] = {}
    for lang, path in (("en", config.ner_model_en), ("de", config.ner_model_de)):
        if not is_bundled(path):
            if path not in token_models:
                token_models[path] = HFTokenClassifier(
                    path, labels=config.ner_labels, aggregation_strategy=config.ner_aggregation
                )
            entity_models[lang] = token_models[path]
    language = LanguageDetector(config.expected_languages, config.language_prior, others=config.language_others)
    return Enricher(brands, sentiment=sentiment, entity_models=entity_models, intent=intent, language=language,
                    ner_engine=config.ner_engine, e5_precision=config.e5_precision, model_scope=config.model_scope,
                    intent_mode=config.intent_mode)
