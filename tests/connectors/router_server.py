"""A real HTTP server on 127.0.0.1 whose answers come from a Python function of (path, query).

The scripted LocalServer in conftest answers fixed replies per path; the Mastodon, Bluesky and
YouTube replays need to page through a pool of recorded items by max_id / cursor / pageToken the
way the real APIs do, so they route requests to a function instead.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from http_harness import Reply

Route = Callable[[str, dict[str, list[str]], dict[str, str]], Reply]


class RouterServer:
    """Answer every GET with route(path, query, headers); record each request path with its query."""

    def __init__(self, route: Route) -> None:
        self.route = route
        self.requests: list[str] = []
        self.request_headers: list[dict[str, str]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server naming)
                server.requests.append(self.path)
                headers = {k.lower(): v for k, v in self.headers.items()}
                server.request_headers.append(headers)
                parts = urlsplit(self.path)
                reply = server.route(parts.path, parse_qs(parts.query), headers)
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"


@contextmanager
def serve(route: Route) -> Iterator[RouterServer]:
    """Run a RouterServer for the duration of the block."""
    server = RouterServer(route)
    thread = threading.Thread(target=server.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()
