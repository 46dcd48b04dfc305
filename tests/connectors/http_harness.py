"""A real HTTP server on 127.0.0.1 that answers each path with a scripted sequence of replies."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parents[1] / "fixtures"


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to stall before answering (to provoke client timeouts)


@dataclass
class SeenRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes = b""


class LocalServer:
    """Scripted replies per path (the last reply repeats); every request is recorded."""

    def __init__(self) -> None:
        self.routes: dict[str, list[Reply]] = {}
        self.requests: list[SeenRequest] = []
        self._stop = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server naming)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                server.requests.append(
                    SeenRequest(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                )
                replies = server.routes.get(self.path) or server.routes.get(self.path.split("?")[0])
                if not replies:
                    self.send_response(404)
                    self.end_headers()
                    return
                reply = replies.pop(0) if len(replies) > 1 else replies[0]
                if reply.delay:
                    server._stop.wait(reply.delay)
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            do_POST = do_GET  # noqa: N815

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def route(self, path: str, *replies: Reply) -> str:
        """Script the replies for `path` and return its full URL."""
        self.routes[path] = list(replies)
        return self.url + path

    def paths(self) -> list[str]:
        return [request.path for request in self.requests]


@pytest.fixture(autouse=True)
def allow_local_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let the shared HTTP client reach the replay servers on 127.0.0.1 (live use refuses private hosts)."""
    monkeypatch.setenv("RESONANZ_ALLOW_PRIVATE_URLS", "1")


@pytest.fixture
def local_server() -> Iterator[LocalServer]:
    """Start a LocalServer for one test."""
    server = LocalServer()
    server.thread.start()
    yield server
    server._stop.set()
    server.httpd.shutdown()
    server.httpd.server_close()


class FakeClock:
    """An injected clock and sleep: sleeping advances the clock and records the seconds asked for."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
