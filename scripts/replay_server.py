"""A local replay server for trying `resonanz collect` offline, with the faults live APIs show.

Serves, on 127.0.0.1 only, recorded real Reddit listings (from tests/fixtures/reddit) behind
Reddit's OAuth token endpoint, and a real RSS feed with ETag support:

- the first listing request answers 429 with `Retry-After`, as Reddit does when rate-limited;
- the second listing page answers 503 for its first `--outage` requests, long enough for a
  whole collect run to give up after its retries, so the next run shows the resume from the
  stored cursor;
- the feed answers 304 Not Modified when the client sends the ETag it got before.

Usage: python scripts/replay_server.py --port 8765 [--outage 15]
Then see docs/replay.md for a resonanz.toml pointing at it.
"""

from __future__ import annotations

import argparse
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

ROOT = Path(__file__).resolve().parents[1]
FIRST_PAGE = ROOT / "tests" / "fixtures" / "reddit" / "askreddit_new.json"
LAST_PAGE = ROOT / "tests" / "fixtures" / "reddit" / "all_search_last_page.json"
FEED = ROOT / "resonanz" / "sample" / "feeds" / "CRE.xml"
FEED_ETAG = '"cre-2016"'


class ReplayState:
    def __init__(self, outage: int) -> None:
        self.lock = threading.Lock()
        self.rate_limited_once = False
        self.outage_left = outage


def make_handler(state: ReplayState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            if self.path.startswith("/api/v1/access_token"):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                token = {"access_token": "replay-token", "token_type": "bearer", "expires_in": 3600}
                self._send(200, json.dumps(token).encode(), {"Content-Type": "application/json"})
            else:
                self._send(404)

        def do_GET(self) -> None:  # noqa: N802
            url = urlparse(self.path)
            if url.path == "/feed.xml":
                if self.headers.get("If-None-Match") == FEED_ETAG:
                    self._send(304, headers={"ETag": FEED_ETAG})
                else:
                    self._send(200, FEED.read_bytes(), {"Content-Type": "application/rss+xml", "ETag": FEED_ETAG})
                return
            if not url.path.endswith("/new"):
                self._send(404)
                return
            after = parse_qs(url.query).get("after")
            with state.lock:
                if not after and not state.rate_limited_once:
                    state.rate_limited_once = True
                    self._send(429, b'{"message": "Too Many Requests"}',
                               {"Retry-After": "3", "x-ratelimit-remaining": "0", "x-ratelimit-reset": "3"})
                    return
                if after and state.outage_left > 0:
                    state.outage_left -= 1
                    self._send(503, b"upstream unavailable")
                    return
            page = LAST_PAGE if after else FIRST_PAGE
            self._send(200, page.read_bytes(), {"Content-Type": "application/json", "x-ratelimit-remaining": "99"})

        def log_message(self, fmt: str, *args: object) -> None:
            print(f"replay: {self.command} {self.path} -> {args[1] if len(args) > 1 else ''}", flush=True)

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--outage", type=int, default=15, help="503 answers for the second listing page")
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(ReplayState(args.outage)))
    print(f"replaying on http://127.0.0.1:{args.port} (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
