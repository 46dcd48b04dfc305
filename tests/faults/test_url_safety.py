"""URL safety of every download: http(s) only, no private/loopback targets (also via redirects) unless opted in, XML bombs refused."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest

from connectors.base import UnsafeUrl
from connectors.http import HttpClient, check_url
from connectors.records import Cursor, Provenance
from connectors.rss import RssConnector, parse_feed, read_opml
from resonanz.settings import SAMPLE_DIR

from faultkit import FakeClock, FaultServer, Reply
from faultkit import allow_local_servers, clock, faulty  # noqa: F401 (pytest fixtures)

CRE = (SAMPLE_DIR / "feeds" / "CRE.xml").read_bytes()
BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE rss [<!ENTITY a "lol"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">
<!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;"><!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;"><!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;">
<!ENTITY g "&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;"><!ENTITY h "&g;&g;&g;&g;&g;&g;&g;&g;&g;&g;"><!ENTITY i "&h;&h;&h;&h;&h;&h;&h;&h;&h;&h;">]>
<rss version="2.0"><channel><title>t</title><item><title>&i;</title><description>boom</description></item></channel></rss>"""
XXE = b"""<?xml version="1.0"?>
<!DOCTYPE rss [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<rss version="2.0"><channel><title>t</title><item><title>leak</title><description>&secret;</description></item></channel></rss>"""
XXE_PARAMETER = b"""<?xml version="1.0"?>
<!DOCTYPE rss [<!ENTITY % remote SYSTEM "http://127.0.0.1:9/evil.dtd"> %remote;]>
<rss version="2.0"><channel><title>t</title><item><title>x</title><description>y</description></item></channel></rss>"""


def strict(clock: FakeClock, **options: object) -> HttpClient:
    return HttpClient(sleep=clock.sleep, clock=clock.time, allow_private=False, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.org/feed.xml", "gopher://x/", "javascript:alert(1)", "http:///nohost"])
def test_only_http_urls_are_fetched(url: str, clock: FakeClock) -> None:
    with strict(clock) as http, pytest.raises(UnsafeUrl, match="only http"):
        http.request("GET", url)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]", "10.1.2.3", "192.168.0.10", "172.16.5.4",
                                  "169.254.169.254", "0.0.0.0", "[fd00::1]", "100.64.0.1"])
def test_private_and_loopback_hosts_are_refused_by_default(host: str, clock: FakeClock) -> None:
    with strict(clock) as http, pytest.raises(UnsafeUrl, match="private, loopback or reserved"):
        http.request("GET", f"http://{host}:9/feed.xml")
    assert http.stats.retries == 0  # refused before any connection, not retried


def test_a_public_address_passes_the_check() -> None:
    check_url("https://93.184.215.14/feed.xml", allow_private=False)  # a literal public IPv4: no DNS needed


def test_the_refusal_happens_before_the_server_sees_anything(faulty: FaultServer, clock: FakeClock) -> None:
    url = faulty.route("/feed.xml", Reply(200, CRE))
    with strict(clock) as http, pytest.raises(UnsafeUrl):
        http.request("GET", url)
    assert faulty.requests == []


def test_environment_opt_in_allows_private_hosts(faulty: FaultServer, monkeypatch: pytest.MonkeyPatch) -> None:
    url = faulty.route("/feed.xml", Reply(200, CRE))
    monkeypatch.delenv("RESONANZ_ALLOW_PRIVATE_URLS")
    with HttpClient() as http, pytest.raises(UnsafeUrl, match="RESONANZ_ALLOW_PRIVATE_URLS"):
        http.request("GET", url)
    monkeypatch.setenv("RESONANZ_ALLOW_PRIVATE_URLS", "1")
    with HttpClient() as http:
        assert http.request("GET", url).content == CRE


class _PublicHopThenLocal(httpx.BaseTransport):
    """feeds.example.org stands for a public host (no DNS offline) that redirects; other hosts are real HTTP."""

    def __init__(self, location: str) -> None:
        self.location = location
        self.real = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == "feeds.example.org":
            return httpx.Response(302, headers={"Location": self.location}, request=request)
        return self.real.handle_request(request)


@pytest.mark.parametrize("target", ["{local}/secret", "http://169.254.169.254/latest/meta-data/", "file:///etc/passwd"])
def test_redirect_to_a_private_address_or_other_scheme_is_refused(faulty: FaultServer, clock: FakeClock, target: str) -> None:
    faulty.route("/secret", Reply(200, b"internal admin page"))
    transport = _PublicHopThenLocal(target.format(local=faulty.url))
    with strict(clock, transport=transport) as http, pytest.raises(UnsafeUrl):
        http.request("GET", "https://feeds.example.org/feed.xml")
    assert faulty.requests == []


def test_feed_connector_refuses_a_loopback_feed_in_production(faulty: FaultServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RESONANZ_ALLOW_PRIVATE_URLS")
    url = faulty.route("/feed.xml", Reply(200, CRE))
    with pytest.raises(UnsafeUrl):
        list(RssConnector(url, "f", url).fetch(None))
    assert faulty.requests == []


def test_remote_opml_cannot_point_at_local_files() -> None:
    opml = b"""<opml version="2.0"><body>
      <outline xmlUrl="/etc/passwd"/><outline xmlUrl="../../root/.ssh/id_rsa"/>
      <outline xmlUrl="file:///etc/shadow"/><outline xmlUrl="feeds/de.xml"/><outline xmlUrl="https://a.example/x.xml"/>
    </body></opml>"""
    feeds = read_opml(opml, "https://lists.example/blogs.opml")
    assert feeds == ["https://lists.example/etc/passwd", "https://lists.example/root/.ssh/id_rsa",
                     "https://lists.example/feeds/de.xml", "https://a.example/x.xml"]
    local = read_opml(b'<opml><body><outline xmlUrl="de.xml"/></body></opml>', str(SAMPLE_DIR / "feeds" / "feeds.opml"))
    assert local == [str(SAMPLE_DIR / "feeds" / "de.xml")]  # a local list may name local files


def parse(body: bytes):  # noqa: ANN201
    return parse_feed(body, Provenance("rss", "bomb", datetime.now(timezone.utc), "t"), Cursor("s", "bomb"))


@pytest.mark.parametrize("body,kind", [(BILLION_LAUGHS, "EntitiesForbidden"), (XXE, "EntitiesForbidden"),
                                       (XXE_PARAMETER, "EntitiesForbidden")], ids=["billion-laughs", "xxe", "xxe-parameter"])
def test_entity_expansion_and_external_entities_are_refused(body: bytes, kind: str) -> None:
    page = parse(body)
    assert page.posts == [] and page.accounts == []
    assert [q.reason.split(":")[0:2] for q in page.quarantined] == [["refused feed", f" {kind}"]]
    assert page.raw.body.startswith("<?xml")  # the payload is kept to inspect
    assert "root:" not in page.raw.body


def test_expat_and_feedparser_alone_do_not_expand_either() -> None:
    """Why the pre-screen exists: without it these feeds parse 'fine' into silently wrong text."""
    import feedparser

    laughs = feedparser.parse(BILLION_LAUGHS)
    assert all(len(entry.get("title", "")) < 100 for entry in laughs.entries)
    xxe = feedparser.parse(XXE)
    assert all("root:" not in entry.get("summary", "") for entry in xxe.entries)


def test_a_plain_doctype_without_entities_still_parses() -> None:
    body = CRE.replace(b"<rss", b'<!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN" "x.dtd">\n<rss', 1)
    page = parse(body)
    assert len(page.posts) == 30 and not any(q.reason.startswith("refused") for q in page.quarantined)


def test_feed_download_size_is_capped(faulty: FaultServer, clock: FakeClock, tmp_path: Path) -> None:
    url = faulty.route("/huge.xml", Reply(200, b"<rss>" + b" " * 300_000 + b"</rss>"))
    from connectors.base import DownloadTooLarge

    with HttpClient(sleep=clock.sleep, clock=clock.time, max_bytes=100_000) as http, pytest.raises(DownloadTooLarge):
        list(RssConnector(url, "f", url, http=http).fetch(None))
