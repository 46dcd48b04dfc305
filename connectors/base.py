"""The connector contract and the named errors every connector may raise."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from typing import Any, Protocol, runtime_checkable

from connectors.records import Cursor, Page, Provenance, Quarantined, RawPayload


@runtime_checkable
class Connector(Protocol):
    """A source of pages: each page is stored with its cursor in one transaction."""

    name: str  # platform written on every record, e.g. "x", "rss"
    version: str

    def fetch(self, cursor: Cursor | None) -> Iterator[Page]:
        """Yield pages after `cursor` (from the start if None), oldest stored first."""
        ...


class ConnectorError(Exception):
    """Base for the known conditions a connector reports (counted, not crashes)."""


class MissingCredential(ConnectorError):
    """A credential needed for a live source is not configured."""

    def __init__(self, what: str, env_var: str) -> None:
        super().__init__(f"{what} is not set: export {env_var}=<value> and run again")
        self.env_var = env_var


class RateLimited(ConnectorError):
    """The API refused because of a rate limit and waiting longer than allowed would be needed."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class NotFound(ConnectorError):
    """The requested stream (feed, folder, user, subreddit) does not exist."""


class Forbidden(ConnectorError):
    """The credential is valid but not allowed to read this stream."""


class MalformedPayload(ConnectorError):
    """A whole response body could not be parsed (pieces of a page go to quarantine instead)."""


class TransientError(ConnectorError):
    """A server or network error persisted after all retries."""


class UnknownConnector(ConnectorError, ValueError):
    """A source names a connector that is not registered."""


class UnsafeUrl(ConnectorError):
    """A URL (or a redirect) points somewhere a collector must not go: not http(s), or a private address."""


class DownloadTooLarge(ConnectorError):
    """A response body exceeded the size or time limit for one download."""


# Returned by open_json_page in place of a payload when the body is not JSON.
MALFORMED: Any = object()


def open_json_page(platform: str, body: str, provenance: Provenance, cursor: Cursor) -> tuple[Page, Any]:
    """Keep `body` as the page's raw payload and decode it.

    Returns the page and the decoded JSON; when the body is not JSON the page already holds a
    quarantine record saying so, and the payload returned is `MALFORMED`.
    """
    raw = RawPayload(provenance=provenance, body=body, content_type="application/json")
    page = Page(raw=raw, cursor=cursor)
    try:
        return page, json.loads(body)
    except json.JSONDecodeError as exc:
        page.quarantined.append(Quarantined(platform, raw.raw_id, f"malformed JSON: {exc}", body))
        return page, MALFORMED



def skip_oversized(walk: Iterator[Page], skip: Callable[[str], None], log: logging.Logger, what: str) -> Iterator[Page]:
    """Yield `walk`'s pages; a body over the size or time limit ends it for this run, logged and counted.

    The cursor stays at the last stored page (the next cursor is inside the body that was not read), so
    the rest of the collection goes on and the next run retries from there.
    """
    try:
        yield from walk
    except DownloadTooLarge as exc:
        skip("download too large")
        log.warning("%s: %s; skipped for this run, its cursor is unchanged", what, exc)
