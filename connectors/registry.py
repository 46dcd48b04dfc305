"""Build the connector a configured source names; list what is available."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from connectors.base import Connector, MissingCredential, UnknownConnector
from connectors.extra_builders import EXTRA_BUILDERS
from connectors.reddit import RedditConnector
from connectors.rss import RssConnector
from connectors.x import XConnector, XReplayConnector
from resonanz.settings import SAMPLE_DIR, Settings, SourceSpec

BUNDLED_PREFIX = "bundled:"


def resolve_stream(stream: str) -> str:
    """Turn a `bundled:<path>` stream into a path inside the bundled sample folder; leave others as given."""
    if stream.startswith(BUNDLED_PREFIX):
        return str(SAMPLE_DIR / stream.removeprefix(BUNDLED_PREFIX))
    return stream


def _x_replay(spec: SourceSpec, settings: Settings) -> Connector:
    return XReplayConnector(Path(resolve_stream(spec.stream)), spec.name, spec.stream)


def _x(spec: SourceSpec, settings: Settings) -> Connector:
    token = settings.x_bearer_token.get_secret_value() if settings.x_bearer_token else None
    if not token:
        raise MissingCredential("X bearer token", "RESONANZ_X_BEARER_TOKEN")
    return XConnector(
        spec.stream, spec.name, token,
        max_results=int(spec.options.get("max_results", 100)),
        max_pages=spec.options.get("max_pages"),
        **({"api_base": spec.options["api_base"]} if "api_base" in spec.options else {}),
    )


def _rss(spec: SourceSpec, settings: Settings) -> Connector:
    return RssConnector(resolve_stream(spec.stream), spec.name, spec.stream, bundled_root=SAMPLE_DIR)


def _reddit(spec: SourceSpec, settings: Settings) -> Connector:
    client_id = settings.reddit_client_id.get_secret_value() if settings.reddit_client_id else None
    secret = settings.reddit_client_secret.get_secret_value() if settings.reddit_client_secret else None
    endpoints = {key: spec.options[key] for key in ("token_url", "api_base") if key in spec.options}
    return RedditConnector(
        spec.stream, spec.name, client_id, secret, max_pages=int(spec.options.get("max_pages", 10)), **endpoints
    )


_BUILDERS: dict[str, tuple[Callable[[SourceSpec, Settings], Connector], str]] = {
    "x_replay": (_x_replay, "Recorded X API v2 pages (page-0001.json, ...) replayed through the live X parser"),
    "x": (_x, "Live X API v2 recent search via tweepy (needs RESONANZ_X_BEARER_TOKEN)"),
    "reddit": (_reddit, "Newest submissions or comments of a subreddit via Reddit's OAuth API (needs API credentials)"),
    "rss": (_rss, "RSS/Atom/JSON Feed from a URL, a local file or an OPML list, with conditional GET"),
}
_BUILDERS.update(EXTRA_BUILDERS)  # Mastodon, Bluesky, YouTube, MediaWiki and the importers


def available_connectors() -> dict[str, str]:
    """Return connector name -> one-line description."""
    return {name: description for name, (_, description) in _BUILDERS.items()}


def build_connector(spec: SourceSpec, settings: Settings) -> Connector:
    """Build the connector for a configured source; an unknown name raises UnknownConnector listing the known ones."""
    try:
        builder, _ = _BUILDERS[spec.connector]
    except KeyError:
        known = ", ".join(sorted(_BUILDERS))
        message = f"unknown connector {spec.connector!r} for source {spec.name!r} (available: {known})"
        raise UnknownConnector(message) from None
    return builder(spec, settings)
