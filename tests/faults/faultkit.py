"""Shared pieces of the fault suite: the connectors' scripted 127.0.0.1 server, a server that breaks connections, a collect loop."""

from __future__ import annotations

import importlib.util
import socket
import struct
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import duckdb
import pytest

from connectors.base import Connector, ConnectorError
from connectors.records import Cursor
from warehouse.load import load_cursor, load_pages

TESTS = Path(__file__).parents[1]
FIXTURES = TESTS / "fixtures"


def _load_connector_harness() -> Any:
    # The connectors' http_harness holds the scripted LocalServer; load it under its own name so it is reused, not copied.
    name = "_connectors_harness"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, TESTS / "connectors" / "http_harness.py")
        module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        sys.modules[name] = module
        spec.loader.exec_module(module)  # type: ignore[union-attr]
    return sys.modules[name]


_harness = _load_connector_harness()
LocalServer = _harness.LocalServer
Reply = _harness.Reply
FakeClock = _harness.FakeClock


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # broken connections are the point here; the client side asserts on them


@dataclass
class Fault:
    """A reply that breaks the HTTP exchange itself rather than answering with a status."""

    kind: str  # "reset", "truncate", "hang", "drip"
    body: bytes = b""
    seconds: float = 0.0  # hang time, or the pause between dripped bytes


class FaultServer:
    """Like LocalServer, but a scripted reply may also be a Fault; the last reply repeats; requests are counted."""

    def __init__(self) -> None:
        self.routes: dict[str, list[Reply | Fault]] = {}
        self.requests: list[str] = []
        self.stop = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 (http.server naming)
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                server.requests.append(self.path)
                replies = server.routes.get(self.path) or server.routes.get(self.path.split("?")[0])
                if not replies:
                    self._answer(Reply(404, b"not here"))
                    return
                reply = replies.pop(0) if len(replies) > 1 else replies[0]
                if isinstance(reply, Fault):
                    self._break(reply)
                else:
                    self._answer(reply)

            do_POST = do_GET  # noqa: N815

            def _answer(self, reply: Reply) -> None:
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            def _break(self, fault: Fault) -> None:
                if fault.kind == "reset":
                    # SO_LINGER 0 makes close() send RST: the client sees "connection reset by peer".
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.close_connection = True
                    return
                if fault.kind == "hang":
                    server.stop.wait(fault.seconds)
                    self.close_connection = True
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                if fault.kind == "truncate":
                    # Promise twice the bytes, send half, hang up: a body cut off mid-transfer.
                    self.send_header("Content-Length", str(len(fault.body) * 2))
                    self.end_headers()
                    self.wfile.write(fault.body)
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.send_header("Content-Length", str(len(fault.body)))
                self.end_headers()
                for i in range(len(fault.body)):  # "drip": one byte per pause
                    if server.stop.is_set():
                        return
                    self.wfile.write(fault.body[i : i + 1])
                    self.wfile.flush()
                    time.sleep(fault.seconds)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def route(self, path: str, *replies: Reply | Fault) -> str:
        """Script the replies for `path` and return its full URL."""
        self.routes[path] = list(replies)
        return self.url + path


@contextmanager
def fault_server() -> Iterator[FaultServer]:
    """Run a FaultServer on 127.0.0.1 for the duration of the block."""
    server = FaultServer()
    thread = threading.Thread(target=server.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stop.set()
        server.httpd.shutdown()
        server.httpd.server_close()


@dataclass
class CollectResult:
    pages: int
    error: ConnectorError | None


def collect(connector: Connector, con: duckdb.DuckDBPyConnection, source: str, stream: str) -> CollectResult:
    """Do what the collect task does (fetch from the stored cursor, store page by page), reporting a named error."""
    pages = 0
    try:
        for page in connector.fetch(load_cursor(con, source, stream)):
            load_pages(con, [page])
            pages += 1
    except ConnectorError as exc:
        return CollectResult(pages, exc)
    return CollectResult(pages, None)


def stored_cursor(con: duckdb.DuckDBPyConnection, source: str, stream: str) -> Cursor | None:
    return load_cursor(con, source, stream)


def count(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> int:
    row = con.execute(sql, params or []).fetchone()
    return int(row[0]) if row else 0


@contextmanager
def warehouse(path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    from warehouse.db import open_warehouse

    with closing(open_warehouse(path)) as con:
        yield con


# --- fixtures (imported by each test module, as the connector tests import http_harness: every
# conftest.py would be the module "conftest", so helpers must not live in one) ---


@pytest.fixture(autouse=True)
def allow_local_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let the HTTP client reach 127.0.0.1; the URL-safety tests pass allow_private=False explicitly."""
    monkeypatch.setenv("RESONANZ_ALLOW_PRIVATE_URLS", "1")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def faulty() -> Iterator[FaultServer]:
    with fault_server() as server:
        yield server


@pytest.fixture
def local_server() -> Iterator[LocalServer]:
    server = LocalServer()
    server.thread.start()
    yield server
    server._stop.set()
    server.httpd.shutdown()
    server.httpd.server_close()
