"""A populated warehouse built once per session from the bundled real samples."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from warehouse.db import open_warehouse
from warehouse_data import build_warehouse


@pytest.fixture(scope="session")
def populated_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_warehouse(tmp_path_factory.mktemp("populated") / "warehouse.duckdb")


@pytest.fixture
def populated(populated_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """Read-only connection to the shared populated warehouse."""
    con = duckdb.connect(str(populated_path), read_only=True)
    con.execute("SET TimeZone = 'UTC'")
    yield con
    con.close()


@pytest.fixture
def populated_copy(populated_path: Path, tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A writable private copy of the populated warehouse."""
    path = tmp_path / "copy.duckdb"
    shutil.copy(populated_path, path)
    con = open_warehouse(path)
    yield con
    con.close()
