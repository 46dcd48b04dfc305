"""Classify each distinct text once: reposts and copy-paste spam reuse the first answer.

Retweets ("RT @someone: …"), quote spam and bot floods repeat the same words many times in a
batch and across batches. `CachedSentiment` wraps any model with SentimentModel's interface:
within a batch, identical normalised texts go to the model once; across batches, answers are
remembered in a bounded LRU keyed by a 16-byte digest (so a 1 MB post costs 16 bytes).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass

from nlp.cascade import SentimentClassifier
from nlp.sentiment import SentimentResult
from nlp.text import for_sentiment, repost_key

DEFAULT_MAX_ENTRIES = 100_000


@dataclass
class CacheCounts:
    """How often the cache answered, deduplicated within a batch, or had to ask the model."""

    hits: int = 0
    batch_duplicates: int = 0
    misses: int = 0


class CachedSentiment:
    """Wrap a sentiment model so each distinct normalised text per language is classified once."""

    def __init__(self, model: SentimentClassifier, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        if max_entries < 0:
            raise ValueError("max_entries must be >= 0")
        self.model = model
        self.max_entries = max_entries
        self.counts = CacheCounts()
        self._lru: OrderedDict[bytes, SentimentResult | None] = OrderedDict()

    @property
    def model_name(self) -> str:
        """Return the wrapped model's name (SentimentModel has none: the pipeline's constant then)."""
        return getattr(self.model, "model_name", "")

    @property
    def model_version(self) -> str:
        """Return the wrapped model's version: the cache never changes an answer's meaning."""
        return self.model.model_version

    @property
    def languages(self) -> tuple[str, ...]:
        """Return the wrapped model's languages."""
        return self.model.languages

    def __len__(self) -> int:
        return len(self._lru)

    def predict(self, texts: list[str], lang: str) -> list[SentimentResult | None]:
        """Return one result per text, asking the model only for texts not seen before."""
        keyed = [repost_key(t) for t in texts]
        digests = [_digest(lang, k) for k in keyed]
        results: list[SentimentResult | None] = [None] * len(texts)
        pending: dict[bytes, list[int]] = {}
        for i, digest in enumerate(digests):
            if digest in self._lru:
                self._lru.move_to_end(digest)
                results[i] = self._lru[digest]
                self.counts.hits += 1
            elif digest in pending:
                pending[digest].append(i)
                self.counts.batch_duplicates += 1
            else:
                pending[digest] = [i]
                self.counts.misses += 1
        if pending:
            firsts = [rows[0] for rows in pending.values()]
            # A text that is no repost goes to the model as written: the model normalises it to
            # the same key itself, and the shared-pass entity heads then keep its tags under the
            # post's own text, so the entity step finds them without tokenising the post again.
            asked = [texts[i] if keyed[i] == for_sentiment(texts[i]) else keyed[i] for i in firsts]
            answers = self.model.predict(asked, lang)
            for (digest, rows), answer in zip(pending.items(), answers):
                for i in rows:
                    results[i] = answer
                self._remember(digest, answer)
        return results

    def _remember(self, digest: bytes, answer: SentimentResult | None) -> None:
        if self.max_entries == 0:
            return
        self._lru[digest] = answer
        self._lru.move_to_end(digest)
        while len(self._lru) > self.max_entries:
            self._lru.popitem(last=False)


def _digest(lang: str, key: str) -> bytes:
    return hashlib.blake2b(f"{lang}\x1f{key}".encode("utf-8", "surrogatepass"), digest_size=16).digest()
