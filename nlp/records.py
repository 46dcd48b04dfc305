"""Records that cross the enrich boundary: posts in, annotation/entity/brand rows out.

Output records map 1:1 onto the warehouse tables `annotations`, `entities` and
`brand_mentions` (the warehouse adds `annotated_at`). Plain slotted dataclasses, like the
connector records, because a batch produces several rows per post.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Task = Literal["language", "sentiment", "entities", "relevance", "intent"]
SentimentLabel = Literal["negative", "neutral", "positive"]
EntityLabel = Literal["PER", "ORG", "LOC", "PRODUCT", "MISC", "BRAND"]


@dataclass(frozen=True, slots=True)
class PostText:
    """The part of a post that enrich reads."""

    source: str
    post_id: str
    text: str
    lang_hint: str | None = None  # the platform's language tag, if it sends one


@dataclass(frozen=True, slots=True)
class Annotation:
    """One post-level label per task: language (ISO 639-1 or "und"), sentiment, intent (label None
    if unknown), entities (score = count) or relevance (relevant/not_relevant)."""

    source: str
    post_id: str
    task: Task
    label: str | None
    score: float | None  # detector confidence / calibrated class probability
    model_name: str
    model_version: str


@dataclass(frozen=True, slots=True)
class EntitySpan:
    """One named entity; offsets index the post text as given (after invalid-UTF-8 repair)."""

    source: str
    post_id: str
    start_char: int
    end_char: int
    label: EntityLabel
    text: str
    model_name: str
    model_version: str


@dataclass(frozen=True, slots=True)
class BrandMention:
    """A configured brand found in a post, with the sentiment toward that brand."""

    source: str
    post_id: str
    brand: str
    brand_kind: str
    matched_text: str
    start_char: int
    sentiment: SentimentLabel | None


@dataclass(slots=True)
class Enrichment:
    """Everything `Enricher.enrich` found for a batch of posts."""

    annotations: list[Annotation] = field(default_factory=list)
    entities: list[EntitySpan] = field(default_factory=list)
    brand_mentions: list[BrandMention] = field(default_factory=list)
