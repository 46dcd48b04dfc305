"""Fixtures for the connector tests.

The server, clock and helpers live in http_harness.py, so test modules import them by a name
no other folder uses: `from conftest import ...` would get whichever conftest.py was imported
first in a whole-suite run.
"""

from http_harness import allow_local_servers, clock, local_server  # noqa: F401 - pytest fixtures
