"""Real interaction fixtures for the graph tests."""

from __future__ import annotations

import pyarrow as pa
import pytest

from graph_data import load_germeval, load_germeval_signals, load_twcs


@pytest.fixture(scope="session")
def twcs() -> pa.Table:
    return load_twcs()


@pytest.fixture(scope="session")
def germeval() -> pa.Table:
    return load_germeval()


@pytest.fixture(scope="session")
def germeval_signals() -> pa.Table:
    return load_germeval_signals()
