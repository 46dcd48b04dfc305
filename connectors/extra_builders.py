"""Builders for Mastodon, Bluesky, YouTube, MediaWiki and the file importers, merged into the registry.

Their credentials are optional or not yet fields of Settings, so they are read from the
environment here (never from the config file): RESONANZ_MASTODON_ACCESS_TOKEN,
RESONANZ_BLUESKY_HANDLE + RESONANZ_BLUESKY_APP_PASSWORD, RESONANZ_YOUTUBE_API_KEY.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from connectors.base import Connector, MissingCredential
from resonanz.settings import Settings, SourceSpec, resolve_path


def _mastodon(spec: SourceSpec, settings: Settings) -> Connector:
    from connectors.mastodon import MastodonConnector

    return MastodonConnector(
        spec.stream, spec.name, access_token=os.environ.get("RESONANZ_MASTODON_ACCESS_TOKEN") or None,
        limit=int(spec.options.get("limit", 40)), max_pages=spec.options.get("max_pages"),
        threads=bool(spec.options.get("threads", False)),
    )


def _bluesky(spec: SourceSpec, settings: Settings) -> Connector:
    from connectors.bluesky import PUBLIC_APPVIEW, BlueskyConnector

    return BlueskyConnector(
        spec.stream, spec.name, base_url=spec.options.get("base_url", PUBLIC_APPVIEW),
        handle=os.environ.get("RESONANZ_BLUESKY_HANDLE") or None,
        app_password=os.environ.get("RESONANZ_BLUESKY_APP_PASSWORD") or None,
        limit=int(spec.options.get("limit", 100)), max_pages=spec.options.get("max_pages"),
    )


def _youtube(spec: SourceSpec, settings: Settings) -> Connector:
    from connectors.youtube import API_BASE, API_KEY_ENV, YouTubeCommentsConnector

    key = os.environ.get(API_KEY_ENV)
    if not key:
        raise MissingCredential("YouTube Data API key", API_KEY_ENV)
    return YouTubeCommentsConnector(
        spec.stream, spec.name, key, base_url=spec.options.get("base_url", API_BASE),
        max_pages=spec.options.get("max_pages"), daily_quota=int(spec.options.get("daily_quota", 10_000)),
        all_replies=bool(spec.options.get("all_replies", False)),
    )


def _mediawiki(spec: SourceSpec, settings: Settings) -> Connector:
    from connectors.mediawiki import MediaWikiRecentChangesConnector

    return MediaWikiRecentChangesConnector(spec.stream, spec.name, max_pages=spec.options.get("max_pages"))


def _path(spec: SourceSpec) -> Path:
    return resolve_path(spec.stream)


def _import_twarc2(spec: SourceSpec, settings: Settings) -> Connector:
    from connectors.importers import Twarc2Importer

    return Twarc2Importer(_path(spec), spec.name, spec.stream)


def _import_4cat(spec: SourceSpec, settings: Settings) -> Connector:
    from connectors.importers import fourcat_importer

    return fourcat_importer(_path(spec), spec.name, spec.stream, platform=spec.options.get("platform", "x"))


def _import_table(spec: SourceSpec, settings: Settings) -> Connector:
    from connectors.importers import TableImporter

    return TableImporter(
        _path(spec), spec.name, spec.stream, platform=str(spec.options.get("platform", "")),
        mapping=spec.options.get("mapping"), file_format=spec.options.get("format"),
    )


def _import_facebook(spec: SourceSpec, settings: Settings) -> Connector:
    from connectors.facebook_export import FacebookExportImporter

    return FacebookExportImporter(_path(spec), spec.name, spec.stream, owner=spec.options.get("owner"))


EXTRA_BUILDERS: dict[str, tuple[Callable[[SourceSpec, Settings], Connector], str]] = {
    "mastodon": (_mastodon, "Mastodon hashtag, account and public timelines and reply trees on one or more instances (Mastodon.py)"),
    "bluesky": (_bluesky, "Bluesky post search, author feeds and threads via the atproto client (public AppView by default)"),
    "youtube": (_youtube, "YouTube Data API v3 comment threads of a video or channel, with quota accounting (needs RESONANZ_YOUTUBE_API_KEY)"),
    "mediawiki": (_mediawiki, "Recent changes of a MediaWiki wiki (e.g. talk pages) via its public Action API"),
    "import_twarc2": (_import_twarc2, "Import a twarc2 JSONL file (X API v2 pages or flattened tweets), resumable by byte offset"),
    "import_4cat": (_import_4cat, "Import a 4CAT CSV or NDJSON export, resumable by byte offset"),
    "import_table": (_import_table, "Import any CSV/NDJSON file by a column mapping (docs/import_mapping.md)"),
    "import_facebook": (_import_facebook, "Import posts or comments from Facebook's 'Download your information' JSON export"),
}
