"""`collect_sources`: only the collect stage, for frequent schedules and `resonanz collect`."""

from __future__ import annotations

import uuid
from typing import Any

from prefect import flow

from flows.tasks import collect_source
from resonanz.settings import load_settings


@flow(name="collect_sources")
def collect_sources(config_file: str | None = None, duckdb_path: str | None = None,
                    sources: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """Collect the configured (or the named) sources; each resumes from its stored cursor."""
    settings = load_settings(config_file, **({"duckdb_path": duckdb_path} if duckdb_path else {}))
    names = sources or [s.name for s in settings.sources if s.enabled]
    run_id = uuid.uuid4().hex
    return {name: collect_source(settings, name, run_id) for name in names}
