"""Proxies: HTTP(S)_PROXY from the environment are ignored; a configured proxy is validated and used,
and every target URL is still checked before a request leaves.

The proxy is a real forwarding HTTP proxy on 127.0.0.1 written here (absolute-form GET in, plain GET
to the upstream out), enough for http:// targets. HTTPS through a proxy (CONNECT) is not exercised:
the decision tested here (which transport, which checks) does not depend on the target's scheme.
"""

from __future__ import annotations

import base64
import http.client
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

from connectors.base import UnsafeUrl
from connectors.bluesky import BlueskyConnector
from connectors.http import PROXY_ENV, HttpClient
from connectors.x import XConnector

from http_harness import LocalServer, Reply

PUBLIC = "93.184.215.14"  # what the fake resolver answers for shop.example; nothing connects to it


class ForwardingProxy:
    """Forward each absolute-form GET to `upstream` (the proxy's own "DNS"), recording the request line and headers."""

    def __init__(self, upstream: str) -> None:
        self.seen: list[tuple[str, dict[str, str]]] = []
        target = urlsplit(upstream)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server naming)
                proxy.seen.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
                asked = urlsplit(self.path)
                forward = http.client.HTTPConnection(target.hostname or "", target.port, timeout=5)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("proxy-authorization", "proxy-connection")}
                forward.request("GET", asked.path + (f"?{asked.query}" if asked.query else ""), headers=headers)
                reply = forward.getresponse()
                body = reply.read()
                self.send_response(reply.status)
                for name, value in reply.getheaders():
                    if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                forward.close()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"


@pytest.fixture
def proxy(local_server: LocalServer) -> Iterator[ForwardingProxy]:
    running = ForwardingProxy(local_server.url)
    thread = threading.Thread(target=running.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield running
    running.httpd.shutdown()
    running.httpd.server_close()


@pytest.fixture
def environment_proxies(monkeypatch: pytest.MonkeyPatch, proxy: ForwardingProxy) -> None:
    """What a corporate shell exports; NO_PROXY cleared so nothing exempts 127.0.0.1."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.setenv(name, proxy.url)
    for name in ("NO_PROXY", "no_proxy", PROXY_ENV):
        monkeypatch.delenv(name, raising=False)


def sdk_routes(server: LocalServer) -> None:
    json_type = {"Content-Type": "application/json"}
    server.route("/feed.xml", Reply(200, b"<rss/>"))
    server.route("/2/tweets/search/recent", Reply(200, b'{"data": [], "meta": {"result_count": 0}}', json_type))
    server.route("/xrpc/app.bsky.feed.searchPosts", Reply(200, b'{"posts": []}', json_type))


def test_environment_proxies_are_ignored_by_the_client_and_both_sdk_bridges(
    local_server: LocalServer, proxy: ForwardingProxy, environment_proxies: None,
) -> None:
    sdk_routes(local_server)
    with HttpClient() as http:
        assert http.request("GET", f"{local_server.url}/feed.xml").content == b"<rss/>"
    list(XConnector("bahn", "x", "test-token", api_base=local_server.url).fetch(None))  # requests (tweepy)
    list(BlueskyConnector("bahn", "b", base_url=local_server.url).fetch(None))  # httpx (atproto)
    assert proxy.seen == []
    assert [r.path.split("?")[0] for r in local_server.requests] == [
        "/feed.xml", "/2/tweets/search/recent", "/xrpc/app.bsky.feed.searchPosts"]


def test_an_environment_proxy_is_no_way_around_the_address_check(
    local_server: LocalServer, proxy: ForwardingProxy, environment_proxies: None, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("RESONANZ_ALLOW_PRIVATE_URLS", raising=False)
    sdk_routes(local_server)
    with HttpClient() as http, pytest.raises(UnsafeUrl, match=r"127\.0\.0\.1"):
        http.request("GET", f"{local_server.url}/feed.xml")
    assert proxy.seen == [] and local_server.requests == []


def test_a_configured_proxy_carries_the_client_and_both_sdk_bridges(
    local_server: LocalServer, proxy: ForwardingProxy, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(PROXY_ENV, proxy.url)
    sdk_routes(local_server)
    with HttpClient() as http:
        assert http.request("GET", f"{local_server.url}/feed.xml").content == b"<rss/>"
    assert len(list(XConnector("bahn", "x", "test-token", api_base=local_server.url).fetch(None))) == 1
    assert len(list(BlueskyConnector("bahn", "b", base_url=local_server.url).fetch(None))) == 1
    asked = [path.split("?")[0] for path, _ in proxy.seen]
    assert asked == [f"{local_server.url}{path}" for path in
                     ("/feed.xml", "/2/tweets/search/recent", "/xrpc/app.bsky.feed.searchPosts")]  # absolute form: a proxy request
    assert len(local_server.requests) == 3


def test_through_a_proxy_every_target_and_redirect_is_still_checked(
    local_server: LocalServer, proxy: ForwardingProxy, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Production mode; the proxy itself is on 127.0.0.1, which is fine: it is the operator's own machine."""
    monkeypatch.delenv("RESONANZ_ALLOW_PRIVATE_URLS", raising=False)
    local_server.route("/feed.xml", Reply(200, b"<rss/>"))
    local_server.route("/moved", Reply(302, b"", {"Location": f"{local_server.url}/admin"}))
    public = lambda host, port: [PUBLIC] if host == "shop.example" else ["127.0.0.1"]  # noqa: E731
    with HttpClient(proxy=proxy.url, resolve=public) as http:
        # A public name passes the check and goes to the proxy, which resolves it itself.
        assert http.request("GET", "http://shop.example/feed.xml").content == b"<rss/>"
        with pytest.raises(UnsafeUrl, match=r"127\.0\.0\.1"):
            http.request("GET", f"{local_server.url}/feed.xml")  # a private target: refused before the proxy
        with pytest.raises(UnsafeUrl, match=r"127\.0\.0\.1"):
            http.request("GET", "http://shop.example/moved")  # the redirect hop to a private address
    assert [path for path, _ in proxy.seen] == ["http://shop.example/feed.xml", "http://shop.example/moved"]
    assert "/admin" not in local_server.paths()


def test_proxy_credentials_are_sent_to_the_proxy_and_never_shown(
    local_server: LocalServer, proxy: ForwardingProxy,
) -> None:
    local_server.route("/feed.xml", Reply(200, b"<rss/>"))
    with_login = proxy.url.replace("http://", "http://reader:s3cret@")
    with HttpClient(proxy=with_login) as http:
        assert http.request("GET", f"{local_server.url}/feed.xml").status_code == 200
    assert proxy.seen[0][1]["proxy-authorization"] == "Basic " + base64.b64encode(b"reader:s3cret").decode()
    assert "proxy-authorization" not in local_server.requests[0].headers


@pytest.mark.parametrize("bad", [
    "socks5://reader:s3cret@127.0.0.1:1080", "ftp://reader:s3cret@proxy.corp:21", "proxy.corp:3128",
    "http://reader:s3cret@proxy.corp:3128/path", "http://reader:s3cret@proxy.corp:notaport", "http://:3128",
])
def test_a_malformed_proxy_url_is_refused_without_showing_the_password(bad: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UnsafeUrl, match=PROXY_ENV) as caught:
        HttpClient(proxy=bad)
    assert "s3cret" not in str(caught.value)
    monkeypatch.setenv(PROXY_ENV, bad)
    with pytest.raises(UnsafeUrl, match="refusing proxy"):
        HttpClient()
