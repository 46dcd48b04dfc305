"""Session-wide test setup: a Prefect home inside the test session and one Prefect harness."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

# Prefect reads its settings once, at import: set them before any test module imports it.
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="resonanz-prefect-home-"))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """Run flows against a throw-away Prefect API; started once, as it takes ~15 s."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield
