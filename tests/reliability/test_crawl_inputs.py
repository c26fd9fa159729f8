"""Malformed crawler inputs: each one is one item's recorded failure, and the rest is stored.

A hostile local site (real HTTP on loopback) serves, per case, one good item next to one bad
one: pages listed by a sitemap, feed items, archive API entries, LinkedIn export members,
repository files, and `twin crawl` arguments. Each case crawls through the real run code into
the real raw store, then checks the stored documents and the reason recorded for the bad item.
Last, a page redirecting the crawler to each port of the running stack is refused.
"""

from __future__ import annotations

import gzip
import io
import json
import subprocess
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.reliability.hostile_site import HTML, HostileSite, Page
from twin.crawl.run import crawl_source, plan_sources
from twin.store.mongo import mongo_client, twin_database

pytestmark = pytest.mark.integration

XML = {"Content-Type": "application/xml"}
PROSE = (
    "Pipelines fail in ordinary ways: a late file, a renamed column, a retry that runs twice. "
    "The teams that do well write down what they expect and check it before anyone else does. "
)


def article(title: str) -> bytes:
    return (
        f"<!DOCTYPE html><html><head><title>{title}</title></head><body><article>"
        f"<h1>{title}</h1><p>{PROSE * 4}</p><p>{PROSE * 3}</p></article></body></html>"
    ).encode()


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[HostileSite]:
    with HostileSite(tmp_path_factory.mktemp("hostile")) as server:
        yield server


@pytest.fixture(scope="module")
def settings(stack_settings, site, tmp_path_factory):
    home = tmp_path_factory.mktemp("crawl-home")
    settings = stack_settings.model_copy(
        update={
            "mongo_database": f"t_{uuid.uuid4().hex[:10]}",
            "object_store_url": (home / "objects").as_uri(),
            "crawl_allow_private_hosts": [f"127.0.0.1:{site.port}"],
            "crawl_per_host_rate": 500.0,
            "crawl_per_host_concurrency": 8,
            "crawl_platform_prefixes": {},
            "crawl_upload_dir": home / "uploads",
            "crawl_extract_processes": 1,
        }
    )
    (home / "uploads").mkdir()
    yield settings
    with mongo_client(settings) as client:
        client.drop_database(settings.mongo_database)


def stored(settings, source_url: str) -> set[str]:
    """URLs of the live documents found in `source_url`."""
    with mongo_client(settings) as client:
        docs = twin_database(client, settings)["documents"].find(
            {"source_url": source_url, "deleted_at": None}, {"url": 1}
        )
        return {d["url"] for d in docs}


def reasons(report: dict) -> dict[str, str]:
    """Recorded reasons by URL, failures and skips together."""
    return {f["url"]: f["reason"] for f in [*report["failures"], *report["skips"]]}


def crawl(settings, platform: str, url: str) -> dict:
    return crawl_source({"author": "Ada Lindqvist", "platform": platform, "url": url}, settings)


# --- pages ----------------------------------------------------------------------------------
def redirect(location: str, status: int = 302) -> Page:
    return Page(b"", status, {"Location": location, "Content-Type": HTML})


PAGE_CASES: dict[str, tuple[object, str]] = {
    # case: (the bad page, or a callable of the site giving it; words of the recorded reason)
    "server-error": (Page(b"oops", 500), "500"),
    "gone": (Page(b"gone", 410), "410"),
    "not-found": (Page(b"no", 404), "404"),
    "truncated": (Page(b"<html><body><article><p>" + PROSE.encode() * 5), "truncated HTML"),
    "inside-a-tag": (Page(b"<html><body><p>" + PROSE.encode() + b"</p><a hr"), "inside a tag"),
    "empty": (Page(b"   "), "empty page"),
    "image": (Page(b"\x89PNG\r\n", headers={"Content-Type": "image/png"}), "content type"),
    "no-content-type": (Page(b"\x00\x01binary", headers={}), "content type"),
    "chrome-only": (
        Page(b"<html><body><nav>Home | About</nav><script>x()</script></body></html>"),
        "no article text found",
    ),
    "oversize": (Page(b"<html><body>" + b"x" * 6_000_000 + b"</body></html>"), "body larger"),
    "gzip-bomb": (
        Page(
            gzip.compress(b"<html><body>" + b" " * 8_000_000 + b"</body></html>"),
            headers={"Content-Type": HTML, "Content-Encoding": "gzip"},
        ),
        "body larger",
    ),
    "redirect-loop": (lambda s: redirect(s.url("/c/redirect-loop/bad")), "redirect loop"),
    "no-location": (Page(b"", 302), "without a Location"),
    "to-metadata": (redirect("http://169.254.169.254/latest/meta-data/"), "metadata"),
    "to-private": (redirect("http://10.0.0.5/admin"), "private address"),
    "to-file": (redirect("file:///etc/passwd"), "scheme 'file'"),
    "to-gopher": (redirect("gopher://127.0.0.1:70/"), "scheme 'gopher'"),
    "to-other-port": (redirect("http://127.0.0.1:1/"), "loopback"),
    "to-mapped-loopback": (redirect("http://[::ffff:127.0.0.1]:1/"), "127.0.0.1"),
    "to-decimal-loopback": (redirect("http://2130706433:1/"), "loopback"),
    "to-credentials": (redirect("http://user:pw@example.org/"), "credentials"),
    "bad-redirect": (redirect("http://[::1"), "invalid redirect"),
}


@pytest.mark.parametrize("case", list(PAGE_CASES))
def test_a_bad_page_is_one_failure_and_the_good_page_is_stored(site, settings, case) -> None:
    bad, words = PAGE_CASES[case]
    prefix = f"/c/{case}"
    site.routes[f"{prefix}/good"] = Page(article(f"Good page {case}"))
    site.routes[f"{prefix}/bad"] = bad(site) if callable(bad) else bad
    sitemap = f"<urlset><url><loc>{site.url(prefix + '/good')}</loc></url>"
    sitemap += f"<url><loc>{site.url(prefix + '/bad')}</loc></url></urlset>"
    site.routes[f"{prefix}/sitemap.xml"] = Page(sitemap.encode(), headers=XML)

    report = crawl(settings, "blog", site.url(f"{prefix}/sitemap.xml"))

    assert stored(settings, site.url(f"{prefix}/sitemap.xml")) == {site.url(f"{prefix}/good")}
    assert report["new"] == 1 and report["failed"] == 1, report
    assert words in reasons(report)[site.url(f"{prefix}/bad")]


# --- feeds ----------------------------------------------------------------------------------
FEED_CASES = {
    # case: (the bad item's link, words of the reason)
    "metadata": ("http://169.254.169.254/latest/meta-data/iam", "metadata"),
    "metadata-name": ("http://metadata.google.internal/computeMetadata/v1/", "metadata host"),
    "private": ("http://192.168.1.10/@ada/story-abcdef123456", "private address"),
    "other-port": ("http://127.0.0.1:1/@ada/story-abcdef123456", "loopback"),
    "ipv6-loopback": ("http://[::1]:8080/@ada/story-abcdef123456", "loopback"),
    "file": ("file:///etc/hostname", "scheme 'file'"),
    "shared": ("http://100.64.0.1/@ada/story-abcdef123456", "shared address"),
}


def feed(items: list[tuple[str, str]]) -> bytes:
    entries = "".join(
        f"<item><title>{title}</title><link>{link}</link><guid>{link}</guid>"
        f"<content:encoded><![CDATA[<p>{PROSE * 3}</p>]]></content:encoded></item>"
        for title, link in items
    )
    return (
        '<?xml version="1.0"?><rss version="2.0" '
        'xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel><title>t</title>'
        f"{entries}</channel></rss>"
    ).encode()


@pytest.mark.parametrize("case", list(FEED_CASES))
def test_a_feed_item_on_a_private_address_is_refused_not_stored(site, settings, case) -> None:
    link, words = FEED_CASES[case]
    prefix = f"/f/{case}"
    good = site.url(f"{prefix}/@ada/good-story-0123456789ab")
    site.routes[f"{prefix}/feed/@ada"] = Page(
        feed([("Good story", good), ("Bad story", link)]),
        headers={"Content-Type": "application/rss+xml"},
    )
    site.routes[f"{prefix}/@ada"] = Page(b"<html><body><main></main></body></html>")
    site.routes[f"{prefix}/@ada/good-story-0123456789ab"] = Page(b"blocked", 403)

    report = crawl(settings, "medium", site.url(f"{prefix}/feed/@ada"))

    assert stored(settings, site.url(f"{prefix}/feed/@ada")) == {good}
    recorded = reasons(report)
    bad = next(url for url in recorded if url != good)
    assert words in recorded[bad] and recorded[bad].startswith("refused")
    assert not any(url.startswith(("http://169.", "file:")) for url in stored_all(settings))


def stored_all(settings) -> set[str]:
    with mongo_client(settings) as client:
        return {d["url"] for d in twin_database(client, settings)["documents"].find({}, {"url": 1})}


ARCHIVE_API_CASES = {
    "metadata-canonical": (
        {"type": "newsletter", "slug": "x", "canonical_url": "http://169.254.169.254/p/x"},
        "metadata",
    ),
    "podcast": ({"type": "podcast", "slug": "pod"}, "not a newsletter post"),
    "paid": ({"type": "newsletter", "slug": "paid", "audience": "only_paid"}, "paid-only"),
}


@pytest.mark.parametrize("case", list(ARCHIVE_API_CASES))
def test_a_bad_archive_api_entry_is_recorded_and_the_good_post_stored(site, settings, case):
    entry, words = ARCHIVE_API_CASES[case]
    prefix = f"/s/{case}"
    good = {"type": "newsletter", "slug": "good", "id": 1, "title": "Good post"}
    entries = [good, {**entry, "id": 2}]
    site.routes[f"{prefix}/api/v1/archive"] = lambda query: Page(
        json.dumps(entries if "offset=0" in query else []).encode(),
        headers={"Content-Type": "application/json"},
    )
    site.routes[f"{prefix}/p/good"] = Page(
        f'<html><body><h1 class="post-title">Good post</h1><div class="body markup">'
        f"<p>{PROSE * 4}</p></div></body></html>".encode()
    )

    report = crawl(settings, "substack", site.url(f"{prefix}/api/v1/archive"))

    assert stored(settings, site.url(f"{prefix}/api/v1/archive")) == {site.url(f"{prefix}/p/good")}
    assert any(words in reason for reason in reasons(report).values()), report


# --- archives (LinkedIn exports in the upload folder) -----------------------------------------
def linkedin_article(title: str, href: str, body: str = PROSE * 3) -> bytes:
    return (
        f'<html><head><title>{title}</title></head><body><h1><a href="{href}">{title}</a></h1>'
        f'<p class="published">Published on 2024-05-01 08:00</p><div><p>{body}</p></div>'
        "</body></html>"
    ).encode()


def shares(rows: list[tuple[str, str]]) -> bytes:
    out = io.StringIO()
    out.write("Date,ShareLink,ShareCommentary,SharedUrl,MediaUrl,Visibility\n")
    for link, text in rows:
        out.write(f'2024-05-01 08:00:00,{link},"{text}",,,MEMBER_NETWORK\n')
    return out.getvalue().encode()


GOOD_SHARE = "https://www.linkedin.com/feed/update/urn:li:activity:7001"
ARCHIVE_CASES: dict[str, tuple[dict[str, bytes], str]] = {
    "share-without-link": ({"Shares.csv": shares([(GOOD_SHARE, PROSE), ("", PROSE)])}, "without"),
    "share-relative-link": (
        {"Shares.csv": shares([(GOOD_SHARE, PROSE), ("/feed/update/2", PROSE)])},
        "not an absolute URL",
    ),
    "article-script-link": (
        {"Articles/Articles/a.html": linkedin_article("Bad", "javascript:alert(1)")},
        "is not a web page",
    ),
    "article-without-text": (
        {"Articles/Articles/a.html": linkedin_article("Empty", "/pulse/empty", body="")},
        "article has no text",
    ),
    "member-bomb": (
        {"Articles/Articles/a.html": b"<html>" + b" " * 5_000_000 + b"</html>"},
        "ZIP bomb",
    ),
    "corrupt-member": ({"Articles/Articles/a.html": b"CORRUPT"}, "unreadable member"),
}


def export(members: dict[str, bytes]) -> bytes:
    data = {"Shares.csv": shares([(GOOD_SHARE, PROSE)]), **members}
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name, body in data.items():
            archive.writestr(name, body)
    blob = out.getvalue()
    if b"CORRUPT" in members.get("Articles/Articles/a.html", b""):
        # flip a byte of that member's compressed data: its CRC no longer matches
        with zipfile.ZipFile(io.BytesIO(blob)) as archive:
            info = archive.getinfo("Articles/Articles/a.html")
        start = info.header_offset + 30 + len(info.filename) + len(info.extra)
        blob = blob[:start] + bytes([blob[start] ^ 0xFF]) + blob[start + 1 :]
    return blob


@pytest.mark.parametrize("case", list(ARCHIVE_CASES))
def test_a_bad_export_member_is_one_failure_and_the_rest_is_stored(settings, case) -> None:
    members, words = ARCHIVE_CASES[case]
    good = f"{GOOD_SHARE}-{case}"  # documents are unique by URL: one good share per case
    members = {"Shares.csv": shares([(GOOD_SHARE, PROSE)]), **members}
    members = {k: v.replace(GOOD_SHARE.encode(), good.encode()) for k, v in members.items()}
    name = f"{case}.zip"
    (Path(settings.crawl_upload_dir) / name).write_bytes(export(members))

    report = crawl(settings, "linkedin", f"upload://{name}")

    assert good in stored(settings, f"upload://{name}")
    assert report["failed"] >= 1 and report["error"] is None
    assert any(words in reason for reason in reasons(report).values()), report


# --- repositories -------------------------------------------------------------------------------
REPO_CASES = {
    # case: (how the bad file is made, words of the reason)
    "link-to-host-file": (lambda w: (w / "host.txt").symlink_to("/etc/hostname"), "symbolic"),
    "link-to-folder": (lambda w: (w / "etc").symlink_to("/etc"), "symbolic"),
    "binary": (lambda w: (w / "blob.py").write_bytes(b"\x00\x01" * 100), "binary"),
    "huge": (lambda w: (w / "big.py").write_text("x = 1\n" * 60_000), "larger than"),
    "lock-file": (lambda w: (w / "poetry.lock").write_text("[[package]]\n"), "lock file"),
    "vendored": (
        lambda w: ((w / "vendor").mkdir(), (w / "vendor" / "lib.py").write_text("x=1\n")),
        "vendored",
    ),
}


@pytest.mark.parametrize("case", list(REPO_CASES))
def test_a_bad_repository_file_is_skipped_and_the_repository_stored(site, settings, case):
    make, words = REPO_CASES[case]
    work = site.root / f"work-{case}"
    work.mkdir()
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run([*git, "init", "-q", "-b", "main", str(work)], check=True)
    (work / "README.md").write_text(f"# {case}\n\nGood docs.\n")
    (work / "main.py").write_text("def main():\n    return 1\n")
    make(work)
    subprocess.run([*git, "-C", str(work), "add", "-A"], check=True)
    subprocess.run([*git, "-C", str(work), "commit", "-q", "-m", "init"], check=True)
    bare = site.root / "git" / f"{case}.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(bare)], check=True)
    subprocess.run(["git", "-C", str(bare), "update-server-info"], check=True)
    url = site.url(f"/git/{case}.git")

    report = crawl(settings, "github", url)

    assert stored(settings, url) == {url}
    with mongo_client(settings) as client:
        doc = twin_database(client, settings)["documents"].find_one({"url": url})
    assert [f["path"] for f in doc["files"]] == ["main.py"]
    assert any(words in reason for reason in reasons(report).values()), report


# --- `twin crawl` arguments ---------------------------------------------------------------------
CLI_CASES = {
    "file-url": (["file:///etc/passwd"], "local files are not crawled"),
    "absolute-path": (["/etc/passwd"], "local files are not crawled"),
    "relative-path": (["./export.zip"], "local files are not crawled"),
    "ftp": (["ftp://example.org/x"], "unsupported scheme 'ftp'"),
    "no-host": (["http://"], "has no host"),
    "credentials": (["http://user:pw@example.org/"], "carries credentials"),
    "upload-escape": (["upload://../../etc/passwd.zip"], "not a plain .zip file name"),
    "upload-missing": (["upload://missing.zip"], "no upload named"),
}


@pytest.fixture
def cli_env(settings, monkeypatch):
    monkeypatch.setenv("MONGO_DATABASE", settings.mongo_database)
    monkeypatch.setenv("OBJECT_STORE_URL", settings.object_store_url)
    monkeypatch.setenv("CRAWL_ALLOW_PRIVATE_HOSTS", json.dumps(settings.crawl_allow_private_hosts))
    monkeypatch.setenv("CRAWL_PER_HOST_RATE", "500")
    monkeypatch.setenv("CRAWL_EXTRACT_PROCESSES", "1")
    monkeypatch.setenv("TWIN_CRAWL_UPLOAD_DIR", str(settings.crawl_upload_dir))
    return settings


@pytest.mark.parametrize("case", list(CLI_CASES))
def test_twin_crawl_reports_a_bad_argument_and_crawls_the_good_one(site, cli_env, case) -> None:
    from typer.testing import CliRunner

    from twin.cli import app

    args, words = CLI_CASES[case]
    good = site.url(f"/cli/{case}/good")
    site.routes[f"/cli/{case}/good"] = Page(article(f"CLI {case}"))

    result = CliRunner().invoke(app, ["crawl", good, *args], env={"COLUMNS": "200"})

    assert result.exit_code == 0, result.output
    assert good in stored_all(cli_env)
    failed = [line for line in result.output.splitlines() if line.startswith("FAILED source")]
    assert len(failed) == 1 and args[0] in failed[0] and words in failed[0], result.output


def test_a_run_of_bad_links_only_is_refused_naming_each(settings) -> None:
    links = [case[0][0] for case in CLI_CASES.values()]
    with pytest.raises(ValueError) as err:
        plan_sources("Ada Lindqvist", links, settings)
    assert all(repr(link) in str(err.value) for link in links)


# --- redirects into the running stack -----------------------------------------------------------
def stack_ports(settings) -> dict[str, int]:
    """The TCP port of each stack service; Postgres' own port when its DSN names one, else the
    default 5432 (the embedded server listens on a Unix socket only)."""
    dsn_port = urlsplit(settings.warehouse_dsn or "").port
    ports = {"postgres": dsn_port or 5432}
    for name, url in (
        ("mongo", settings.mongo_uri),
        ("mlflow", settings.mlflow_tracking_uri),
        ("triton-http", settings.triton_http_url),
        ("triton-grpc", settings.triton_grpc_url),
    ):
        if url:
            target = url if "://" in url else f"grpc://{url}"
            ports[name] = int(urlsplit(target).port or 0)
    return {name: port for name, port in ports.items() if port}


@pytest.mark.parametrize("service", ["postgres", "mongo", "mlflow", "triton-http", "triton-grpc"])
def test_a_redirect_to_a_stack_port_is_refused(site, settings, service) -> None:
    port = stack_ports(settings).get(service)
    if port is None:
        pytest.skip(f"{service} is not part of this stack")
    prefix = f"/stack/{service}"
    site.routes[f"{prefix}/good"] = Page(article(f"Good {service}"))
    site.routes[f"{prefix}/bad"] = redirect(f"http://127.0.0.1:{port}/")
    site.routes[f"{prefix}/bad-localhost"] = redirect(f"http://localhost:{port}/api/")
    sitemap = "".join(
        f"<url><loc>{site.url(prefix + p)}</loc></url>" for p in ("/good", "/bad", "/bad-localhost")
    )
    site.routes[f"{prefix}/sitemap.xml"] = Page(f"<urlset>{sitemap}</urlset>".encode(), headers=XML)

    report = crawl(settings, "blog", site.url(f"{prefix}/sitemap.xml"))

    assert stored(settings, site.url(f"{prefix}/sitemap.xml")) == {site.url(f"{prefix}/good")}
    recorded = reasons(report)
    for path in ("/bad", "/bad-localhost"):
        reason = recorded[site.url(prefix + path)]
        assert f"127.0.0.1:{port}" in reason or f"localhost:{port}" in reason
        assert "loopback" in reason
