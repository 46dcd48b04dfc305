"""The one HTTP client every HTTP connector uses: timeouts, retries with backoff, rate-limit waits, conditional GET.

Server-side request forgery is refused in two places. A request hook checks every URL (and every
redirect hop): http(s) only, and without the opt-in no host that resolves to a private, loopback or
reserved address. The transport then resolves the host once more, checks those addresses and
connects to exactly one of them, so a DNS answer that changes between the check and the connection
(DNS rebinding) cannot slip a private address in. TLS still verifies and sends SNI for the host
name, because httpcore takes both from the URL, not from the socket's address.

Proxies: the environment's HTTP_PROXY / HTTPS_PROXY / ALL_PROXY are ignored (httpx and requests
would otherwise pick them up silently and send around the pinned transport). A proxy is used only
when one is configured explicitly (RESONANZ_HTTP__PROXY, i.e. `[http] proxy`, or `proxy=`); its URL
is checked first, and every target URL and redirect hop is still checked here before it is sent.
The proxy resolves the target's name itself, so behind a proxy the DNS-rebinding guard is the
proxy's egress policy, not this module's; see docs/security.md.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import ssl
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx
import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict
from requests.utils import get_encoding_from_headers

from connectors.base import (
    DownloadTooLarge,
    Forbidden,
    MalformedPayload,
    NotFound,
    RateLimited,
    TransientError,
    UnsafeUrl,
)

USER_AGENT = "resonanz/0.1 (+https://github.com/resonanz; social listening)"
_RETRY_STATUS = {500, 502, 503, 504}
# Opt-in for feeds or APIs on an intranet (and for tests on 127.0.0.1); live collection refuses private hosts.
ALLOW_PRIVATE_ENV = "RESONANZ_ALLOW_PRIVATE_URLS"
MAX_BYTES = 32 * 1024 * 1024  # one API page or feed; far above any real one
MAX_SECONDS = 120.0  # one whole download, however slowly the server drips it
# The one way to send through a proxy; pydantic-settings maps `[http] proxy` to the same name.
PROXY_ENV = "RESONANZ_HTTP__PROXY"


@dataclass(slots=True)
class HttpStats:
    """Counters a flow reports in its run statistics."""

    requests: int = 0
    retries: int = 0  # transient failures (5xx, connection errors, timeouts) retried
    rate_limit_waits: int = 0
    waited_seconds: float = 0.0
    not_modified: int = 0
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> count of pages/streams given up

    def skip(self, reason: str) -> None:
        """Count one page or stream given up, by reason."""
        self.skipped[reason] = self.skipped.get(reason, 0) + 1


Resolver = Callable[[str, int], list[str]]


def resolve_addresses(host: str, port: int) -> list[str]:
    """Return the IP addresses `host` resolves to (an IP literal resolves to itself), in resolver order."""
    infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def refuse_private(host: str, addresses: list[str]) -> None:
    """Raise UnsafeUrl if any of `host`'s addresses is private, loopback, link-local, reserved or multicast."""
    for text in addresses:
        address = ipaddress.ip_address(text.split("%")[0])  # drop an IPv6 zone id such as %eth0
        if not address.is_global or address.is_multicast:
            raise UnsafeUrl(
                f"refusing {host} ({address}): a private, loopback or reserved address; "
                f"set {ALLOW_PRIVATE_ENV}=1 to collect from an internal host"
            )


def check_url(url: str | httpx.URL, allow_private: bool, resolve: Resolver = resolve_addresses) -> None:
    """Raise UnsafeUrl unless the URL is http(s) and (without `allow_private`) resolves only to public addresses."""
    parts = urlsplit(str(url))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeUrl(f"refusing {str(url)[:200]!r}: only http(s) URLs with a host are fetched")
    if allow_private:
        return
    try:
        addresses = resolve(parts.hostname, parts.port or 0)
    except (OSError, UnicodeError):
        return  # an unresolvable host cannot be reached either; the connection attempt reports it
    refuse_private(parts.hostname, addresses)


class PinnedBackend(httpcore.NetworkBackend):
    """Resolve a host once, check every address, and connect to a checked address only.

    httpcore hands `connect_tcp` the URL's host name and would let the socket resolve it again;
    here the name is resolved exactly once per connection and the socket gets the IP literal.
    """

    def __init__(self, allow_private: bool, resolve: Resolver = resolve_addresses) -> None:
        self.allow_private = allow_private
        self.resolve = resolve
        self._sockets = httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Any = None) -> httpcore.NetworkStream:
        try:
            addresses = self.resolve(host, port)
        except (OSError, UnicodeError) as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        if not addresses:
            raise httpcore.ConnectError(f"{host} resolved to no address")
        if not self.allow_private:
            refuse_private(host, addresses)
        failure: Exception | None = None
        for address in addresses:  # what socket.create_connection does: try each address in turn
            try:
                return self._sockets.connect_tcp(address.split("%")[0], port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    def sleep(self, seconds: float) -> None:
        self._sockets.sleep(seconds)


class PinnedTransport(httpx.HTTPTransport):
    """An httpx transport whose connections go through a PinnedBackend (see the module docstring)."""

    def __init__(self, *, allow_private: bool, resolve: Resolver = resolve_addresses,
                 verify: ssl.SSLContext | bool = True, limits: httpx.Limits | None = None) -> None:
        limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=20)  # httpx's defaults
        super().__init__(verify=verify, limits=limits)
        # httpx 0.28 takes no network backend, so the pool it built is replaced by the same pool over ours.
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=PinnedBackend(allow_private, resolve),
        )


def allow_private_from_env() -> bool:
    """Whether RESONANZ_ALLOW_PRIVATE_URLS opts in to private, loopback and reserved hosts."""
    return os.environ.get(ALLOW_PRIVATE_ENV, "").strip().lower() in ("1", "true", "yes")


def proxy_from_env() -> str | None:
    """Return the explicitly configured proxy URL (RESONANZ_HTTP__PROXY), or None; HTTP(S)_PROXY do not count."""
    return os.environ.get(PROXY_ENV, "").strip() or None


def check_proxy_url(url: str) -> str:
    """Return `url` if it is a plain http(s)://[user:password@]host:port proxy; else raise UnsafeUrl.

    The proxy is the operator's own machine, so a private address is fine; anything else in the
    URL (another scheme, a path, a query) is a typo that would otherwise fail later or obscurely.
    The message never shows the password.
    """
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = -1
    shown = f"{parts.scheme}://{parts.hostname or ''}" + (f":{port}" if port and port > 0 else "")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeUrl(f"refusing proxy {shown!r} from {PROXY_ENV}: only http:// or https:// proxies with a host are supported")
    if port == -1 or parts.path not in ("", "/") or parts.query or parts.fragment:
        raise UnsafeUrl(f"refusing proxy {shown!r} from {PROXY_ENV}: give only scheme, host and port, e.g. http://proxy.corp:3128")
    return url


def default_transport(*, allow_private: bool, resolve: Resolver = resolve_addresses, proxy: str | None = None,
                      verify: ssl.SSLContext | bool = True) -> httpx.BaseTransport:
    """Return the transport the shared client sends through: pinned, or via the configured proxy."""
    if proxy:
        # Through a proxy the socket goes to the proxy, so there is no target address to pin; the
        # request hook still checks every target URL before the request leaves.
        return httpx.HTTPTransport(verify=verify, proxy=httpx.Proxy(check_proxy_url(proxy)))
    return PinnedTransport(allow_private=allow_private, resolve=resolve, verify=verify)


class HttpClient:
    """A small policy layer over httpx.Client; `sleep` and `clock` are injectable so tests never really wait."""

    def __init__(
        self,
        *,
        timeout: float = 15.0,
        max_retries: int = 4,
        backoff_base: float = 1.0,
        backoff_cap: float = 60.0,
        max_wait: float = 900.0,
        max_rate_limit_waits: int = 3,
        headers: dict[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        transport: httpx.BaseTransport | None = None,
        allow_private: bool | None = None,
        max_bytes: int = MAX_BYTES,
        max_seconds: float = MAX_SECONDS,
        resolve: Resolver = resolve_addresses,
        proxy: str | None = None,
    ) -> None:
        self.allow_private = allow_private_from_env() if allow_private is None else allow_private
        self.resolve = resolve
        configured = proxy or proxy_from_env()
        self.proxy = check_proxy_url(configured) if configured else None
        self.max_bytes = max_bytes
        self.max_seconds = max_seconds
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.max_wait = max_wait
        self.max_rate_limit_waits = max_rate_limit_waits
        self.sleep = sleep
        self.clock = clock
        self.stats = HttpStats()
        self._client = httpx.Client(
            timeout=timeout, headers={"User-Agent": USER_AGENT, **(headers or {})},
            follow_redirects=True,
            transport=transport or default_transport(allow_private=self.allow_private, resolve=resolve, proxy=self.proxy),
            trust_env=False,  # no proxy, .netrc or CA bundle from the environment: see the module docstring
            # The hook runs for every hop, so a redirect to a private address is refused too.
            event_hooks={"request": [lambda request: check_url(request.url, self.allow_private, self.resolve)]},
        )

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def request(self, method: str, url: str, *, params: dict[str, Any] | None = None,
                headers: dict[str, str] | None = None, data: dict[str, str] | None = None,
                auth: tuple[str, str] | None = None) -> httpx.Response:
        """Send a request, retrying transient failures and waiting out rate limits; raise named errors."""
        attempt = 0
        rate_limit_waits = 0
        while True:
            self.stats.requests += 1
            try:
                response = self._send(method, url, params=params, headers=headers, data=data, auth=auth)
            except (httpx.TimeoutException, httpx.TransportError, httpx.DecodingError) as exc:
                if attempt >= self.max_retries:
                    raise TransientError(f"{method} {url} failed after {attempt + 1} attempts: {exc!r}") from exc
                self._backoff(attempt)
                attempt += 1
                continue
            if response.status_code == 429:
                wait = self._rate_limit_wait(response, attempt)
                if wait > self.max_wait or rate_limit_waits >= self.max_rate_limit_waits:
                    raise RateLimited(f"{url} is rate limited; retry in {wait:.0f}s", retry_after=wait)
                self._wait(wait)
                rate_limit_waits += 1
                continue
            if response.status_code in _RETRY_STATUS:
                if attempt >= self.max_retries:
                    raise TransientError(f"{method} {url} returned {response.status_code} after {attempt + 1} attempts")
                self._backoff(attempt)
                attempt += 1
                continue
            if response.status_code == 404:
                raise NotFound(f"{url} was not found (404)")
            if response.status_code in (401, 403):
                raise Forbidden(f"{url} refused access ({response.status_code})")
            if response.status_code >= 400:
                raise TransientError(f"{method} {url} returned {response.status_code}")
            return response

    def send_once(self, method: str, url: str, **options: Any) -> httpx.Response:
        """Send one request under the URL checks and size/time limits, with no retry and whatever its status.

        For SDKs that run their own retry policy (see RequestsAdapter); `options` go to httpx.Client.stream.
        """
        self.stats.requests += 1
        return self._send(method, url, **options)

    def _send(self, method: str, url: str, **options: Any) -> httpx.Response:
        """Send one request and read its body within the size and time limits."""
        started = time.monotonic()
        with self._client.stream(method, url, **options) as response:
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_bytes():  # decoded bytes, so a gzip bomb is caught too
                size += len(chunk)
                if size > self.max_bytes:
                    raise DownloadTooLarge(f"{method} {url}: body larger than {self.max_bytes} bytes; not read further")
                if time.monotonic() - started > self.max_seconds:
                    raise DownloadTooLarge(f"{method} {url}: download took longer than {self.max_seconds:.0f}s")
                chunks.append(chunk)
            # What Response.read() does, with the limits above applied on the way.
            response._content = b"".join(chunks)
        return response

    def get_json(self, url: str, *, params: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None) -> tuple[httpx.Response, Any]:
        """GET a JSON document; a body that is not JSON raises MalformedPayload (the response stays attached)."""
        response = self.request("GET", url, params=params, headers=headers)
        try:
            return response, json.loads(response.text)
        except json.JSONDecodeError as exc:
            error = MalformedPayload(f"{url} returned a body that is not JSON: {exc}")
            error.response = response  # type: ignore[attr-defined]
            raise error from exc

    def conditional_get(
        self, url: str, *, etag: str | None = None, last_modified: str | None = None
    ) -> httpx.Response | None:
        """GET with If-None-Match / If-Modified-Since; return None when the server says 304 Not Modified."""
        headers = {}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        response = self.request("GET", url, headers=headers)
        if response.status_code == 304:
            self.stats.not_modified += 1
            return None
        return response

    def _backoff(self, attempt: int) -> None:
        self.stats.retries += 1
        self._sleep(min(self.backoff_cap, self.backoff_base * 2**attempt))

    def _wait(self, seconds: float) -> None:
        self.stats.rate_limit_waits += 1
        self._sleep(seconds)

    def _sleep(self, seconds: float) -> None:
        self.stats.waited_seconds += seconds
        self.sleep(seconds)

    def _rate_limit_wait(self, response: httpx.Response, attempt: int) -> float:
        fallback = min(self.backoff_cap, self.backoff_base * 2**attempt)
        return rate_limit_wait_seconds(response.headers, self.clock(), fallback)


class RequestsAdapter(BaseAdapter):
    """Carry a requests.Session's traffic (an SDK's, e.g. Mastodon.py) over an HttpClient.

    Every request then gets the same URL checks, address pinning and size/time limits as the
    connectors that use HttpClient directly; the SDK keeps its own retry and rate-limit handling.
    Mount it on both schemes: `session.mount("https://", adapter); session.mount("http://", adapter)`.
    SDKs tend to wrap every exception in their own network error; the refusal is kept in `refused`
    so the caller can raise it as what it is instead of retrying. The `proxies` requests hands over
    (from HTTP(S)_PROXY) are ignored on purpose: the HttpClient alone decides (see the module docstring).
    """

    def __init__(self, http: HttpClient) -> None:
        super().__init__()
        self.http = http
        self.refused: UnsafeUrl | DownloadTooLarge | None = None

    def send(self, request: requests.PreparedRequest, stream: bool = False, timeout: Any = None,
             verify: Any = True, cert: Any = None, proxies: Any = None) -> requests.Response:
        self.refused = None
        options: dict[str, Any] = {"headers": dict(request.headers), "content": request.body}
        if isinstance(timeout, tuple):  # requests' (connect, read)
            options["timeout"] = httpx.Timeout(timeout[1], connect=timeout[0])
        elif timeout is not None:
            options["timeout"] = timeout
        try:
            reply = self.http.send_once(str(request.method), str(request.url), **options)
        except (UnsafeUrl, DownloadTooLarge) as exc:
            self.refused = exc
            raise
        except httpx.TimeoutException as exc:
            raise requests.exceptions.Timeout(str(exc), request=request) from exc
        except httpx.TransportError as exc:
            raise requests.exceptions.ConnectionError(str(exc), request=request) from exc
        except httpx.DecodingError as exc:  # a corrupt gzip/deflate body
            raise requests.exceptions.ContentDecodingError(str(exc), request=request) from exc
        response = requests.Response()
        response.status_code = reply.status_code
        response.reason = reply.reason_phrase
        response.headers = CaseInsensitiveDict(reply.headers.items())
        response.encoding = get_encoding_from_headers(response.headers)
        response.url = str(reply.url)
        response.request = request
        response._content = reply.content
        response._content_consumed = True
        return response

    def close(self) -> None:
        self.http.close()


# Headers that describe the wire form of a body; the body handed on is already decoded and whole.
_WIRE_HEADERS = {"content-encoding", "content-length", "transfer-encoding"}


class HttpClientTransport(httpx.BaseTransport):
    """Carry an httpx-based SDK's traffic (e.g. atproto's Client) over an HttpClient.

    What RequestsAdapter does for requests-based SDKs: URL checks, address pinning, the proxy
    setting and the size/time limits come from the shared client; the SDK keeps its own retries.
    Pass it as the SDK's `transport=`. A refusal (UnsafeUrl, DownloadTooLarge) propagates unchanged.
    """

    def __init__(self, http: HttpClient) -> None:
        self.http = http

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        headers = [(name, value) for name, value in request.headers.multi_items() if name.lower() not in ("host", "content-length")]
        try:
            reply = self.http.send_once(request.method, str(request.url), headers=headers, content=request.read())
        except httpx.DecodingError as exc:
            # A corrupt compressed body: for the SDK a broken read, which it reports as a network error.
            raise httpx.ReadError(f"undecodable body from {request.url}: {exc}", request=request) from exc
        kept = [(name, value) for name, value in reply.headers.multi_items() if name.lower() not in _WIRE_HEADERS]
        return httpx.Response(reply.status_code, headers=kept, content=reply.content, request=request)

    def close(self) -> None:
        self.http.close()


def rate_limit_wait_seconds(headers: Mapping[str, str], now: float, fallback: float) -> float:
    """Return the seconds to wait after a 429: Retry-After, else x-rate-limit-reset (epoch), else `fallback`."""
    retry_after = headers.get("Retry-After")
    if retry_after:
        try:
            return max(0.0, float(retry_after))
        except ValueError:
            try:
                return max(0.0, parsedate_to_datetime(retry_after).timestamp() - now)
            except (TypeError, ValueError):
                pass
    reset = headers.get("x-rate-limit-reset")
    if reset:
        try:
            # +1s because the reset second itself may still be inside the window.
            return max(0.0, float(reset) - now + 1.0)
        except ValueError:
            pass
    return fallback


def follow_next_token(
    client: HttpClient,
    url: str,
    params: dict[str, Any],
    *,
    token_param: str = "next_token",
    read_token: Callable[[Any], str | None] = lambda data: (data.get("meta") or {}).get("next_token"),
    start_token: str | None = None,
) -> Iterator[tuple[httpx.Response, Any, str | None]]:
    """Yield (response, decoded JSON, next token) per page, following the token until the API gives none."""
    token = start_token
    seen: set[str] = set()
    while True:
        page_params = {**params, **({token_param: token} if token else {})}
        response, data = client.get_json(url, params=page_params)
        token = read_token(data) if isinstance(data, dict) else None
        if token and token in seen:
            # An API that hands back a token it already gave would page in a circle forever.
            client.stats.skip("repeated pagination token")
            token = None
        if token:
            seen.add(token)
        yield response, data, token
        if not token:
            return
