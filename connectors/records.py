"""Typed records that every connector yields and the warehouse stores.

These are the contract between collect and store: a connector turns one raw API page into a
`Page` of records; the warehouse upserts a `Page` (and the cursor it ends on) in one
transaction. Plain dataclasses with slots, because connectors build tens of thousands per
second and pydantic validation would dominate the parse cost.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

InteractionKind = Literal["reply", "repost", "quote", "mention", "link"]
INTERACTION_KINDS: tuple[str, ...] = ("reply", "repost", "quote", "mention", "link")


def content_id(*parts: str | bytes) -> str:
    """Return a stable 32-hex id for the given parts (used for raw payload and quarantine ids)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part if isinstance(part, bytes) else part.encode("utf-8", "surrogatepass"))
        digest.update(b"\x1f")
    return digest.hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Provenance:
    """Where a record came from: stamped on every raw payload."""

    source: str  # connector name, e.g. "x", "reddit", "rss"
    endpoint: str  # API endpoint, query or feed URL
    retrieved_at: datetime
    connector_version: str


@dataclass(frozen=True, slots=True)
class RawPayload:
    """One response body exactly as received, kept before any parsing."""

    provenance: Provenance
    body: str
    content_type: str = "application/json"
    raw_id: str = ""

    def __post_init__(self) -> None:
        if not self.raw_id:
            # Same body from the same endpoint is the same payload: re-runs do not duplicate it.
            object.__setattr__(
                self, "raw_id", content_id(self.provenance.source, self.provenance.endpoint, self.body)
            )


@dataclass(slots=True)
class Account:
    source: str
    account_id: str
    handle: str | None = None
    display_name: str | None = None
    description: str | None = None
    location: str | None = None
    url: str | None = None
    followers_count: int | None = None
    following_count: int | None = None
    post_count: int | None = None
    created_at: datetime | None = None
    verified: bool | None = None
    raw_id: str | None = None


@dataclass(slots=True)
class Post:
    source: str
    post_id: str
    author_id: str | None
    text: str
    created_at: datetime | None = None
    url: str | None = None
    title: str | None = None
    lang_hint: str | None = None  # language the platform reports, if any
    parent_post_id: str | None = None
    conversation_id: str | None = None
    like_count: int | None = None
    repost_count: int | None = None
    reply_count: int | None = None
    quote_count: int | None = None
    raw_id: str | None = None


@dataclass(slots=True)
class Interaction:
    """A directed edge: `src_account_id` did `kind` towards `dst_account_id` in `post_id`."""

    source: str
    kind: str  # one of INTERACTION_KINDS
    src_account_id: str
    dst_account_id: str
    post_id: str
    target_post_id: str | None = None
    created_at: datetime | None = None


@dataclass(slots=True)
class Quarantined:
    """A piece of a payload that could not be parsed, with the reason, so nothing is lost."""

    source: str
    raw_id: str | None
    reason: str
    fragment: str
    quarantine_id: str = ""

    def __post_init__(self) -> None:
        if not self.quarantine_id:
            self.quarantine_id = content_id(self.source, self.raw_id or "", self.reason, self.fragment)


@dataclass(slots=True)
class Cursor:
    """Where a (source, stream) left off; opaque to everything but its connector."""

    source: str
    stream: str  # query, feed URL, subreddit, ...
    state: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Page:
    """What a connector yields: one raw payload, the records parsed from it, and the cursor
    that is valid once this page is stored."""

    raw: RawPayload
    cursor: Cursor
    posts: list[Post] = field(default_factory=list)
    accounts: list[Account] = field(default_factory=list)
    interactions: list[Interaction] = field(default_factory=list)
    quarantined: list[Quarantined] = field(default_factory=list)
