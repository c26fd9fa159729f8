"""The SSRF guard: public addresses pass; private, loopback, metadata and odd spellings do not.

Only literal addresses and `localhost` are used, so no test needs DNS or the internet.
"""

import pickle
import re

import pytest

from twin.crawl.http import BlockedURL, FetchError
from twin.crawl.policy import CrawlPolicy
from twin.crawl.ssrf import check_url, parse_allow, resolve_public

PUBLIC = [
    "http://93.184.216.34/",
    "https://93.184.216.34:8443/feed.xml?page=2",
    "http://8.8.8.8/robots.txt",
    "http://[2606:4700:4700::1111]/",
    "http://[::ffff:93.184.216.34]/",  # mapped form of a public address is still public
]

BLOCKED = [
    # (url, words the reason must contain)
    ("http://127.0.0.1/", "loopback"),
    ("http://127.0.0.1:8080/admin", "loopback"),
    ("http://localhost/", "loopback"),
    ("http://LOCALHOST:8080/", "loopback"),
    ("http://10.0.0.1/", "private"),
    ("http://172.16.5.4/", "private"),
    ("http://192.168.1.1/", "private"),
    ("http://169.254.169.254/latest/meta-data/", "metadata"),
    ("http://169.254.1.1/", "link-local"),
    ("http://100.64.0.1/", "shared"),
    ("http://100.100.100.200/", "metadata"),
    ("http://0.0.0.0/", "unspecified"),
    ("http://224.0.0.1/", "multicast"),
    ("http://240.0.0.1/", "reserved"),
    ("http://[::1]/", "loopback"),
    ("http://[::]/", "unspecified"),
    ("http://[fe80::1]/", "link-local"),
    ("http://[fd00:ec2::254]/", "metadata"),
    ("http://[fc00::5]/", "private"),
    ("http://[::ffff:127.0.0.1]/", "IPv6 form of 127.0.0.1"),
    ("http://[::ffff:a9fe:a9fe]/", "metadata"),
    ("http://[64:ff9b::a00:1]/", "IPv6 form of 10.0.0.1"),
    ("http://[2002:7f00:1::]/", "IPv6 form of 127.0.0.1"),
    ("http://2130706433/", "loopback"),
    ("http://0x7f.1/", "loopback"),
    ("http://0177.0.0.1/", "not a valid URL"),  # httpx refuses leading-zero octets
    ("http://127.1/", "loopback"),
    ("http://0x7f000001/", "loopback"),
    ("http://0177.1/", "loopback"),
    ("http://017700000001/", "loopback"),
    ("http://metadata.google.internal/computeMetadata/v1/", "metadata host"),
    ("ftp://93.184.216.34/file", "scheme 'ftp'"),
    ("file:///etc/passwd", "scheme 'file'"),
    ("gopher://93.184.216.34:70/", "scheme 'gopher'"),
    ("javascript:alert(1)", "scheme"),
    ("http://user:secret@93.184.216.34/", "credentials"),
    ("http://user@93.184.216.34/", "credentials"),
]


@pytest.mark.parametrize("url", PUBLIC)
def test_public_addresses_pass(url: str) -> None:
    check_url(url, ())


@pytest.mark.parametrize(("url", "words"), BLOCKED)
def test_non_public_targets_are_blocked_with_a_reason(url: str, words: str) -> None:
    with pytest.raises(BlockedURL) as err:
        check_url(url, ())
    assert err.value.url == url
    assert words in err.value.reason
    assert str(err.value) == f"{url}: {err.value.reason}"


ALLOWED = [
    # (allow list of host:port pairs, url)
    (("127.0.0.1:8080",), "http://127.0.0.1:8080/page"),
    (("127.0.0.1:80",), "http://[::ffff:127.0.0.1]/"),
    (("localhost:9000",), "http://LocalHost:9000/"),
    (("LOCALHOST:80",), "http://localhost/"),
    (("127.0.0.1:80",), "http://0x7f.1/"),
    (("10.1.2.3:443",), "https://10.1.2.3/"),
    (("[::1]:8000",), "http://[::1]:8000/"),
    (("[0:0::1]:8000",), "http://[::1]:8000/"),
]


@pytest.mark.parametrize(("allow", "url"), ALLOWED)
def test_allow_list_lets_host_port_pairs_through(allow: tuple[str, ...], url: str) -> None:
    check_url(url, allow)


NOT_ALLOWED = [
    (("127.0.0.1:8080",), "http://127.0.0.1:5432/"),  # another service on the same host
    (("127.0.0.1:8080",), "http://127.0.0.1/"),
    (("127.0.0.1:8080",), "http://10.0.0.1:8080/"),
    (("127.0.0.1:80",), "http://169.254.169.254/"),
    (("localhost:80",), "http://127.0.0.1/"),  # a name allows that name, not its addresses
    (("localhost:80",), "http://localhost:8080/"),
    (("127.0.0.1:21",), "ftp://127.0.0.1/"),  # the allow list never relaxes the scheme rule
    (("127.0.0.1:80",), "http://u:p@127.0.0.1/"),
]


@pytest.mark.parametrize(("allow", "url"), NOT_ALLOWED)
def test_allow_list_is_no_wider_than_written(allow: tuple[str, ...], url: str) -> None:
    with pytest.raises(BlockedURL):
        check_url(url, allow)


@pytest.mark.parametrize("entry", ["127.0.0.1", "localhost", "10.0.0.0/8", "::1", "[::1]", "h:0"])
def test_allow_list_entries_without_a_port_are_refused_by_name(entry: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(entry))):
        CrawlPolicy(allow_private_hosts=(entry,))
    with pytest.raises(ValueError, match="host:port"):
        parse_allow((entry,))


def test_connect_time_check_refuses_a_name_that_resolves_to_loopback() -> None:
    with pytest.raises(BlockedURL) as err:
        resolve_public("localhost", 80, ())
    assert "localhost resolves to" in err.value.reason
    assert resolve_public("93.184.216.34", 80, ()) == ["93.184.216.34"]
    assert "127.0.0.1" in resolve_public("localhost", 80, ("localhost:80",))
    with pytest.raises(BlockedURL):
        resolve_public("localhost", 81, ("localhost:80",))


def test_blocked_url_is_a_fetch_error_that_survives_pickling() -> None:
    error = FetchError("https://example.org/a", "500 Internal Server Error", status=500)
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.url, copy.reason, copy.status, str(copy)) == (
        error.url,
        error.reason,
        500,
        "https://example.org/a: 500 Internal Server Error",
    )
    blocked = pickle.loads(pickle.dumps(BlockedURL("http://10.0.0.1/", "a private address")))
    assert isinstance(blocked, BlockedURL)
    assert isinstance(blocked, FetchError)


def test_settings_refuse_a_whole_host_in_the_allow_list() -> None:
    from pydantic import ValidationError

    from twin.settings import Settings

    with pytest.raises(ValidationError, match="crawl_allow_private_hosts"):
        Settings(crawl_allow_private_hosts=["127.0.0.1"])
    assert Settings(crawl_allow_private_hosts=["127.0.0.1:8000"]).crawl_allow_private_hosts == [
        "127.0.0.1:8000"
    ]
