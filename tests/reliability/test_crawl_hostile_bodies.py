"""Bodies built to hurt the crawling host: feeds that name a host file, compression bombs,
repositories of endless empty files, and NUL bytes.

A hostile local site (real HTTP on loopback, git over dumb HTTP from its folder) serves each
case; every crawl goes through the real run code into the real raw store. Each bad input must
end as one recorded failure (or a cleaned document), within a bounded time and memory, while the
good items beside it are stored.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import subprocess
import tempfile
import threading
import time
import tracemalloc
import uuid
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import brotli
import pytest

from tests.reliability.hostile_site import HostileSite, Page
from twin.crawl.http import FetchError, PoliteClient
from twin.crawl.run import crawl_policy, crawl_source
from twin.store.mongo import mongo_client, twin_database

pytestmark = pytest.mark.integration

LIMIT = 1_000_000  # the crawl's max_body_bytes here
BOMB = 128 << 20  # what each bomb expands to: 128 MiB from a few hundred kB or less
GIT_MAX_FILES = 1_000
XML = {"Content-Type": "application/xml"}
RSS = {"Content-Type": "application/rss+xml"}
JSON = {"Content-Type": "application/json"}
PROSE = (
    "Pipelines fail in ordinary ways: a late file, a renamed column, a retry that runs twice. "
    "The teams that do well write down what they expect and check it before anyone else does. "
)
MARKER = "HOSTFILE7Q2" + "ZX"  # text only the host file holds


def article(title: str) -> bytes:
    return (
        f"<!DOCTYPE html><html><head><title>{title}</title></head><body><article>"
        f"<h1>{title}</h1><p>{PROSE * 4}</p><p>{PROSE * 3}</p></article></body></html>"
    ).encode()


def substack_post(title: str) -> bytes:
    return (
        f'<html><body><h1 class="post-title">{title}</h1><div class="body markup">'
        f"<p>{PROSE * 4}</p></div></body></html>"
    ).encode()


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[HostileSite]:
    with HostileSite(tmp_path_factory.mktemp("hostile-bodies")) as server:
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
            "crawl_max_body_bytes": LIMIT,
            "crawl_git_max_files": GIT_MAX_FILES,
        }
    )
    (home / "uploads").mkdir()
    yield settings
    with mongo_client(settings) as client:
        client.drop_database(settings.mongo_database)


def crawl(settings, platform: str, url: str) -> dict:
    return crawl_source({"author": "Ada Lindqvist", "platform": platform, "url": url}, settings)


def documents(settings, source_url: str | None = None) -> list[dict]:
    query = {} if source_url is None else {"source_url": source_url}
    with mongo_client(settings) as client:
        return list(twin_database(client, settings)["documents"].find(query))


def reasons(report: dict) -> dict[str, str]:
    return {f["url"]: f["reason"] for f in [*report["failures"], *report["skips"]]}


# --- feeds whose body is a path on the crawling host ----------------------------------------
def host_feed(site: HostileSite, prefix: str) -> bytes:
    """A feed as it would sit in a file on the host, its one item pointing back at the site."""
    link = site.url(f"{prefix}/leak/@ada/leaked-story-0123456789ab")
    return (
        '<?xml version="1.0"?><rss version="2.0" '
        'xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel><title>t</title>'
        f"<item><title>{MARKER} story</title><link>{link}</link><guid>{link}</guid>"
        f"<content:encoded><![CDATA[<p>{MARKER} {PROSE * 3}</p>]]></content:encoded></item>"
        "</channel></rss>"
    ).encode()


def crawl_with_deadline(settings, platform: str, url: str, fifo: Path | None, seconds: float):
    """The crawl's report, or a failure when it is still running after `seconds` (a crawler
    blocked opening `fifo` is then let go by a writer that opens and closes it)."""
    done: dict = {}
    worker = threading.Thread(
        target=lambda: done.setdefault("report", crawl(settings, platform, url)), daemon=True
    )
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        if fifo is not None:
            with contextlib.suppress(OSError):
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        worker.join(30)
        pytest.fail(f"the {platform} crawl still ran after {seconds:g} s (it opened the body)")
    return done["report"]


@pytest.mark.parametrize("platform", ["medium", "substack"])
@pytest.mark.parametrize("body", ["host-file", "fifo"])
def test_a_feed_body_naming_a_host_file_is_parsed_as_text(site, settings, platform, body):
    prefix = f"/feeds/{platform}-{body}"
    path = site.root / f"{platform}-{body}.host"  # outside the site's routes: never served
    fifo = None
    if body == "fifo":
        os.mkfifo(path)
        fifo = path
    else:
        path.write_bytes(host_feed(site, prefix))
    leaked = site.url(f"{prefix}/leak/@ada/leaked-story-0123456789ab")
    site.routes[f"{prefix}/leak/@ada/leaked-story-0123456789ab"] = Page(substack_post("leak"))
    if platform == "medium":
        site.routes[f"{prefix}/feed/@ada"] = Page(str(path).encode(), headers=RSS)
        site.routes[f"{prefix}/@ada"] = Page(b"<html><body><main></main></body></html>")
        source, feed_url = site.url(f"{prefix}/feed/@ada"), site.url(f"{prefix}/feed/@ada")
    else:  # no archive API here: the crawler falls back to the feed
        site.routes[f"{prefix}/feed"] = Page(str(path).encode(), headers=RSS)
        source, feed_url = site.url(f"{prefix}/"), site.url(f"{prefix}/feed")

    began = time.monotonic()
    report = crawl_with_deadline(settings, platform, source, fifo, seconds=60)

    assert time.monotonic() - began < 60
    stored = documents(settings)
    assert not any(MARKER in json.dumps(d, default=str) for d in stored), "host file was read"
    assert leaked not in {d["url"] for d in stored}
    assert "malformed feed" in reasons(report).get(feed_url, ""), report


# --- compression bombs and content codings ---------------------------------------------------
def zeros(compressor, size: int) -> bytes:
    chunk = bytes(1 << 20)
    return b"".join(compressor.process(chunk) for _ in range(size >> 20)) + compressor.finish()


class _Gzip:
    def __init__(self) -> None:
        self._z = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)

    def process(self, data: bytes) -> bytes:
        return self._z.compress(data)

    def finish(self) -> bytes:
        return self._z.flush()


@pytest.fixture(scope="module")
def bombs(site) -> dict[str, tuple[str, str]]:
    """Path of each bad page on the site -> (its URL, words of the recorded reason)."""
    gzipped = zeros(_Gzip(), BOMB)
    pages = {
        "gzip-bomb": (
            Page(gzipped, headers={"Content-Type": "text/html", "Content-Encoding": "gzip"}),
            f"body larger than {LIMIT} bytes once decoded (Content-Encoding gzip)",
        ),
        "br-bomb": (
            Page(
                zeros(brotli.Compressor(quality=5), BOMB),
                headers={"Content-Type": "text/html", "Content-Encoding": "br"},
            ),
            f"body larger than {LIMIT} bytes once decoded (Content-Encoding br)",
        ),
        "gzip-gzip": (
            Page(
                gzip.compress(gzipped),
                headers={"Content-Type": "text/html", "Content-Encoding": "gzip, gzip"},
            ),
            "chained content codings refused (Content-Encoding 'gzip, gzip')",
        ),
        "unknown-coding": (
            Page(
                article("Compressed?"),
                headers={"Content-Type": "text/html", "Content-Encoding": "compress"},
            ),
            "unsupported content coding 'compress'",
        ),
    }
    out = {}
    for name, (page, words) in pages.items():
        site.routes[f"/bombs/{name}"] = page
        out[f"/bombs/{name}"] = (site.url(f"/bombs/{name}"), words)
    return out


def test_bombs_and_odd_codings_fail_one_page_each_and_the_good_pages_land(site, settings, bombs):
    site.routes["/bombs/good"] = Page(article("Good page"))
    site.routes["/bombs/good-gzip"] = Page(
        gzip.compress(article("Good gzip page")),
        headers={"Content-Type": "text/html", "Content-Encoding": "gzip"},
    )
    site.routes["/bombs/good-br"] = Page(
        brotli.compress(article("Good br page")),
        headers={"Content-Type": "text/html", "Content-Encoding": "br"},
    )
    good = [site.url(p) for p in ("/bombs/good", "/bombs/good-gzip", "/bombs/good-br")]
    locs = "".join(
        f"<url><loc>{url}</loc></url>" for url in [*good, *(u for u, _ in bombs.values())]
    )
    site.routes["/bombs/sitemap.xml"] = Page(f"<urlset>{locs}</urlset>".encode(), headers=XML)

    began = time.monotonic()
    report = crawl(settings, "blog", site.url("/bombs/sitemap.xml"))

    assert time.monotonic() - began < 60
    assert {d["url"] for d in documents(settings, site.url("/bombs/sitemap.xml"))} == set(good)
    recorded = reasons(report)
    for url, words in bombs.values():
        assert words in recorded.get(url, ""), (url, recorded.get(url))
    assert report["failed"] == len(bombs)


def test_a_bomb_costs_no_more_memory_than_the_body_limit(settings, bombs) -> None:
    with PoliteClient(crawl_policy(settings)) as client:
        for url, words in bombs.values():
            tracemalloc.start()
            began = time.monotonic()
            try:
                with pytest.raises(FetchError) as err:
                    client.fetch(url)
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            assert peak < 8 * LIMIT, f"{url}: {peak} bytes at peak"
            assert words in err.value.reason
            assert time.monotonic() - began < 10


# --- a repository of endless empty files ------------------------------------------------------
def bare_repository(site: HostileSite, name: str) -> Path:
    """A new bare repository in the site's folder (served over dumb HTTP under /git/)."""
    bare = site.root / "git" / f"{name}.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
    return bare


def write_blob(bare: Path, content: bytes) -> str:
    return (
        subprocess.run(
            ["git", "-C", str(bare), "hash-object", "-w", "--stdin"],
            input=content,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .strip()
    )


def publish(site: HostileSite, bare: Path, entries: list[tuple[str, str]]) -> str:
    """Commit a flat tree of (file name, blob) on `main` without any working files (`git
    mktree`); returns the repository's URL."""
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", "-C", str(bare)]
    listing = "".join(f"100644 blob {sha}\t{name}\n" for name, sha in entries)
    tree = subprocess.run(
        [*git, "mktree"], input=listing, capture_output=True, text=True, check=True
    ).stdout.strip()
    commit = subprocess.run(
        [*git, "commit-tree", tree, "-m", "init"], capture_output=True, text=True, check=True
    ).stdout.strip()
    subprocess.run([*git, "update-ref", "refs/heads/main", commit], check=True)
    subprocess.run([*git, "update-server-info"], check=True)
    return site.url(f"/git/{bare.name}")


def make_repository(site: HostileSite, name: str, files: dict[str, bytes]) -> str:
    """A repository of `files` (flat names); returns its URL."""
    bare = bare_repository(site, name)
    return publish(site, bare, [(path, write_blob(bare, data)) for path, data in files.items()])


def test_a_repository_of_too_many_files_is_refused_and_leaves_nothing(
    site, settings, tmp_path, monkeypatch
) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # where the crawl clones
    bare = bare_repository(site, "many")
    empty = write_blob(bare, b"")
    many = publish(site, bare, [(f"f{n:05d}.py", empty) for n in range(20_000)])
    good = make_repository(
        site, "fine", {"README.md": b"# fine\n\nGood docs.\n", "main.py": b"x = 1\n"}
    )

    refused = crawl(settings, "github", many)
    assert [d["url"] for d in documents(settings, many)] == []
    assert f"more than {GIT_MAX_FILES} files" in reasons(refused)[many], refused
    assert list(scratch.iterdir()) == []  # no checkout (nor git home) left behind

    fine = crawl(settings, "github", good)
    assert fine["new"] == 1 and fine["failed"] == 0, fine
    assert list(scratch.iterdir()) == []


# --- NUL bytes at the crawler's edge ----------------------------------------------------------
def test_nul_bytes_in_an_export_an_archive_api_and_a_repository_never_reach_the_store(
    site, settings
) -> None:
    # a LinkedIn export whose share text holds a NUL
    share = "https://www.linkedin.com/feed/update/urn:li:activity:7009"
    csv = "Date,ShareLink,ShareCommentary,SharedUrl,MediaUrl,Visibility\n"
    csv += f'2024-05-01 08:00:00,{share},"Data \x00contracts {PROSE}",,,MEMBER_NETWORK\n'
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("Shares.csv", csv.encode())
    (Path(settings.crawl_upload_dir) / "nul.zip").write_bytes(out.getvalue())
    # a Substack archive API whose entry carries an escaped NUL in its title and subtitle
    entries = [
        {
            "type": "newsletter",
            "slug": "nul",
            "id": 1,
            "title": "Poi\u0000soned",
            "subtitle": "sub\u0000title",
        }
    ]
    site.routes["/nul/api/v1/archive"] = lambda query: Page(
        json.dumps(entries if "offset=0" in query else []).encode(), headers=JSON
    )
    site.routes["/nul/p/nul"] = Page(substack_post("Page title"))
    # a repository file that is text for its first 8 KiB, then holds a NUL
    repo = make_repository(
        site,
        "nul",
        {
            "README.md": b"# nul\n\nDocs.\n",
            "late.py": b"x = 1\n" * 2000 + b"\x00y = 2\n",
            "main.py": b"def main():\n    return 1\n",
        },
    )

    reports = [
        crawl(settings, "linkedin", "upload://nul.zip"),
        crawl(settings, "substack", site.url("/nul/api/v1/archive")),
        crawl(settings, "github", repo),
    ]

    stored = {d["url"]: d for d in documents(settings)}
    assert stored[share]["text"].startswith("Data contracts")
    post = stored[site.url("/nul/p/nul")]
    assert (post["title"], post["metadata"]["subtitle"]) == ("Poisoned", "subtitle")
    assert [f["path"] for f in stored[repo]["files"]] == ["main.py"]
    assert "binary" in reasons(reports[2])[f"{repo}#late.py"]
    everything = json.dumps([stored[share], post, stored[repo]], default=str)
    assert "\x00" not in everything and "\\u0000" not in everything
