"""DNS rebinding and SDK traffic: the address that is checked is the address connected to, for every connector.

DNS cannot be made to lie offline, so `lying_dns` replaces `socket.getaddrinfo` (the one entry point
both the URL check and a plain socket connection resolve through) with a resolver that answers a
public address first and 127.0.0.1 afterwards — what a rebinding attacker's DNS server does. Every
other part is real: httpx/httpcore, Mastodon.py, atproto, TLS and a server on 127.0.0.1. Each of
these tests reaches the local server (and fails) when a connection resolves the name again on its own.
"""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from http_harness import LocalServer, Reply
from http_harness import allow_local_servers, local_server  # noqa: F401 - pytest fixtures

from connectors.base import UnsafeUrl
from connectors.bluesky import BlueskyConnector
from connectors.http import HttpClient, PinnedTransport
from connectors.mastodon import MastodonConnector

PUBLIC = "93.184.215.14"  # any global address; nothing ever connects to it in these tests
REAL_GETADDRINFO = socket.getaddrinfo


class LyingDns:
    """Answer `public_answers` lookups of the fake names with a public address, every later one with 127.0.0.1."""

    def __init__(self, names: set[str], public_answers: int) -> None:
        self.names = names
        self.public_answers = public_answers
        self.lookups: list[str] = []

    def getaddrinfo(self, host: object, port: object, *args: object, **kwargs: object) -> list:
        name = host.decode() if isinstance(host, bytes) else str(host)
        self.lookups.append(name)
        if name not in self.names:
            return REAL_GETADDRINFO(host, port, *args, **kwargs)  # type: ignore[arg-type]
        answered = sum(1 for looked_up in self.lookups if looked_up == name)
        address = PUBLIC if answered <= self.public_answers else "127.0.0.1"
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, int(port or 0)))]


@pytest.fixture
def lying_dns(monkeypatch: pytest.MonkeyPatch) -> Callable[..., LyingDns]:
    def install(*names: str, public_answers: int = 1) -> LyingDns:
        dns = LyingDns(set(names), public_answers)
        monkeypatch.setattr(socket, "getaddrinfo", dns.getaddrinfo)
        return dns

    return install


@pytest.fixture
def strict(monkeypatch: pytest.MonkeyPatch) -> None:
    """Production mode: no RESONANZ_ALLOW_PRIVATE_URLS."""
    monkeypatch.delenv("RESONANZ_ALLOW_PRIVATE_URLS", raising=False)


def port_of(server: LocalServer) -> int:
    return int(server.url.rsplit(":", 1)[1])


def test_a_rebinding_answer_after_the_check_is_refused_at_connect(
    local_server: LocalServer, lying_dns: Callable[..., LyingDns], strict: None,
) -> None:
    local_server.route("/admin", Reply(200, b"internal admin page"))
    dns = lying_dns("rebind.example")
    with HttpClient() as http, pytest.raises(UnsafeUrl, match=r"rebind\.example \(127\.0\.0\.1\)"):
        http.request("GET", f"http://rebind.example:{port_of(local_server)}/admin")
    assert dns.lookups.count("rebind.example") == 2  # the URL check saw the public answer, the connection the rebound one
    assert local_server.requests == []


def test_the_transport_alone_refuses_private_addresses(local_server: LocalServer) -> None:
    """No request hook at all (as in an SDK's own client): the pinned transport still refuses."""
    local_server.route("/admin", Reply(200, b"internal admin page"))
    with httpx.Client(transport=PinnedTransport(allow_private=False)) as client, pytest.raises(UnsafeUrl):
        client.get(f"{local_server.url}/admin")
    with httpx.Client(transport=PinnedTransport(allow_private=False)) as client, pytest.raises(UnsafeUrl, match="::1"):
        client.get(f"http://[::1]:{port_of(local_server)}/admin")
    assert local_server.requests == []


def test_with_the_opt_in_the_connection_goes_to_the_resolved_address_under_the_host_name(
    local_server: LocalServer, lying_dns: Callable[..., LyingDns],
) -> None:
    """RESONANZ_ALLOW_PRIVATE_URLS=1 (set by the harness): internal hosts are allowed, still resolved once."""
    local_server.route("/feed.xml", Reply(200, b"<rss/>"))
    dns = lying_dns("intranet.example", public_answers=0)
    url = f"http://intranet.example:{port_of(local_server)}/feed.xml"
    with HttpClient() as http:
        assert http.request("GET", url).content == b"<rss/>"
    assert dns.lookups.count("intranet.example") == 1  # one lookup; the socket was handed the literal address
    assert "127.0.0.1" in dns.lookups
    assert local_server.requests[0].headers["host"] == f"intranet.example:{port_of(local_server)}"


def _certificate(tmp_path: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for `name` only (not for 127.0.0.1), made with `cryptography`."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[int, Path, list[str | None]]]:
    """An HTTPS server on 127.0.0.1 with a certificate for shop.example; records the SNI each handshake sent."""
    cert, key = _certificate(tmp_path, "shop.example")
    server_names: list[str | None] = []
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    context.sni_callback = lambda sock, name, ctx: server_names.append(name)  # type: ignore[assignment]

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1], cert, server_names
    httpd.shutdown()
    httpd.server_close()


def test_tls_sends_sni_and_verifies_the_certificate_for_the_host_name(
    tls_server: tuple[int, Path, list[str | None]], lying_dns: Callable[..., LyingDns],
) -> None:
    port, cert, server_names = tls_server
    lying_dns("shop.example", "other.example", public_answers=0)
    trust = ssl.create_default_context(cafile=str(cert))
    with httpx.Client(transport=PinnedTransport(allow_private=True, verify=trust)) as client:
        response = client.get(f"https://shop.example:{port}/")
        assert (response.status_code, response.text) == (200, "ok")
        assert server_names == ["shop.example"]  # SNI is the name, though the socket went to 127.0.0.1
        # Same address, a name the certificate does not cover: verification is by name, so it fails.
        with pytest.raises(httpx.ConnectError, match="(?i)certificate|hostname"):
            client.get(f"https://other.example:{port}/")


def test_mastodon_sdk_traffic_is_pinned_too(
    local_server: LocalServer, lying_dns: Callable[..., LyingDns], strict: None,
) -> None:
    """Mastodon.py sends through requests; its session now rides on the shared client."""
    local_server.route("/api/v1/timelines/tag/bahn", Reply(200, b"[]"))
    dns = lying_dns("social.example")
    connector = MastodonConnector(f"http://social.example:{port_of(local_server)}|#bahn", "m", max_retries=0)
    with pytest.raises(UnsafeUrl, match=r"social\.example \(127\.0\.0\.1\)"):
        list(connector.fetch(None))
    assert dns.lookups.count("social.example") >= 2  # the instance check passed; the request's own check did not
    assert local_server.requests == []


def test_mastodon_sdk_traffic_gets_the_download_limits(local_server: LocalServer) -> None:
    from connectors.base import DownloadTooLarge
    from connectors.http import MAX_BYTES

    local_server.route("/api/v1/timelines/tag/bahn", Reply(200, b"[" + b" " * MAX_BYTES + b"]"))
    connector = MastodonConnector(f"{local_server.url}|#bahn", "m", max_retries=0)
    with pytest.raises(DownloadTooLarge):
        list(connector.fetch(None))
    timeline = [path for path in local_server.paths() if path.startswith("/api/v1/timelines/tag/bahn")]
    assert len(timeline) == 1  # not retried: an oversized body will be oversized again


def test_bluesky_sdk_traffic_is_pinned_too(
    local_server: LocalServer, lying_dns: Callable[..., LyingDns], strict: None,
) -> None:
    local_server.route("/xrpc/app.bsky.feed.searchPosts", Reply(200, b'{"posts": []}'))
    dns = lying_dns("appview.example")
    connector = BlueskyConnector("search:bahn", "b", base_url=f"http://appview.example:{port_of(local_server)}", max_retries=0)
    with pytest.raises(UnsafeUrl, match=r"appview\.example \(127\.0\.0\.1\)"):
        list(connector.fetch(None))
    assert dns.lookups.count("appview.example") == 2
    assert local_server.requests == []
