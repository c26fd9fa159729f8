"""The bundled sample author: content volume and voice, the generated site, the sample server."""

from __future__ import annotations

import csv
import hashlib
import html
import io
import json
import os
import re
import shutil
import subprocess
import time
import urllib.robotparser
import zipfile
from pathlib import Path

import feedparser
import httpx
import pytest

from sample_author import AUTHOR, SampleServer, SiteManifest, build_site, load_documents
from sample_author.content import PACKAGE_DIR
from sample_author.manifest import load_manifest
from sample_author.synthetic import synthetic_article

SIGNATURE = AUTHOR.signature
PII_SEEDED = {
    "blog/hello-again": ("email",),
    "blog/cost-per-answer": ("api_key",),
    "linkedin/meetup-stockholm": ("phone",),
    "linkedin/what-i-look-for-when-hiring": ("phone",),
    "medium/lora-on-a-budget": ("api_key",),
    "substack/why-this-newsletter": ("email",),
}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> SiteManifest:
    return build_site(tmp_path_factory.mktemp("site"))


@pytest.fixture(scope="module")
def server(site: SiteManifest):
    with SampleServer(site.site_dir, burst_limit=None) as srv:
        yield srv


@pytest.fixture
def client(server: SampleServer):
    with httpx.Client(base_url=server.base_url, timeout=10, trust_env=False) as c:
        yield c


def shingles(text: str, n: int = 3) -> set[tuple[str, ...]]:
    words = re.findall(r"\w+", text.lower())
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


# content ---------------------------------------------------------------------------------------


def test_enough_writing_across_platforms(site: SiteManifest):
    docs = load_documents()
    assert len(docs) >= 60
    assert sum(d.words for d in docs) >= 25_000
    assert site.total_documents >= 60 and site.total_words >= 25_000
    counts = {p: m.expected_documents for p, m in site.platforms.items()}
    assert counts["linkedin"] >= 24 and counts["medium"] >= 12
    assert counts["substack"] >= 10 and counts["blog"] >= 12 and counts["github"] == 2


def test_lengths_match_each_platform():
    for doc in load_documents():
        if doc.platform == "linkedin" and doc.kind == "post":
            assert 60 <= doc.words <= 250, doc.key
        elif doc.platform == "medium":
            assert 600 <= doc.words <= 1200, doc.key
        elif doc.platform == "substack":
            assert 500 <= doc.words <= 1000, doc.key


def test_long_form_writing_has_her_structure_and_signature():
    long_form = [d for d in load_documents() if d.kind == "article" or d.platform == "substack"]
    assert all(d.body.rstrip().endswith(SIGNATURE) for d in long_form)
    for doc in load_documents("medium"):
        assert "## The short version" in doc.body and "## What I'd do again" in doc.body


def test_documents_are_not_templated_copies():
    docs = [d for d in load_documents() if d.words > 300]
    sets = {d.key: shingles(d.body) for d in docs}
    keys = sorted(sets)
    for i, a in enumerate(keys):
        for b in keys[i + 1 :]:
            overlap = len(sets[a] & sets[b]) / len(sets[a] | sets[b])
            assert overlap < 0.2, (a, b, overlap)


def test_pii_is_seeded_exactly_where_documented():
    found = {d.key: d.pii for d in load_documents() if d.pii}
    assert found == PII_SEEDED
    readme = (PACKAGE_DIR / "README.md").read_text(encoding="utf-8")
    for key in PII_SEEDED:
        assert key in readme


def test_crossposts_are_near_but_not_exact_duplicates(site: SiteManifest):
    docs = {d.key: d for d in load_documents()}
    assert len(site.near_duplicates) == 2
    for original, copy in site.near_duplicates:
        a, b = shingles(docs[original].body), shingles(docs[copy].body)
        similarity = len(a & b) / len(a | b)
        assert 0.6 <= similarity < 1.0, (original, copy, similarity)


# generated site --------------------------------------------------------------------------------


def test_manifest_round_trips(site: SiteManifest):
    loaded = load_manifest(site.site_dir)
    assert loaded == site
    assert {d.key for d in loaded.documents} >= {"blog/flaky", "medium/lora-on-a-budget"}
    links = site.links("http://127.0.0.1:9")
    assert "http://127.0.0.1:9/medium/feed/@ada-lindqvist" in links


def test_build_is_deterministic(site: SiteManifest, tmp_path: Path):
    again = build_site(tmp_path / "again")

    def digests(root: Path) -> dict[str, str]:
        return {
            p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*"))
            if p.is_file()
            and not any(
                part == ".git" or part.endswith(".git") for part in p.relative_to(root).parts
            )
        }

    assert digests(site.site_dir) == digests(again.site_dir)
    assert [r.head for r in site.repos] == [r.head for r in again.repos]


def test_extra_pages_add_deterministic_articles(tmp_path: Path):
    manifest = build_site(tmp_path, extra_pages=25)
    blog = manifest.platforms["blog"]
    assert sum(d.synthetic for d in blog.documents) == 25
    assert blog.expected_documents == len(load_documents("blog")) + 25
    seventh = synthetic_article(7)
    assert seventh.slug != synthetic_article(8).slug and seventh.body != synthetic_article(8).body
    note = manifest.document(f"blog/{seventh.slug}")
    page = (tmp_path / note.url.strip("/") / "index.html").read_text(encoding="utf-8")
    assert note.title == seventh.title and html.escape(seventh.title) in page
    first_sentence = seventh.body.split(".")[0]
    assert html.escape(first_sentence, quote=False) in page
    assert (tmp_path / "blog/page/8/index.html").exists()
    assert manifest.total_documents == site_documents_without_extras() + 25


def site_documents_without_extras() -> int:
    return len(load_documents()) + 2  # + two git repositories


def test_linkedin_export_is_shaped_like_linkedins(site: SiteManifest):
    archive = zipfile.ZipFile(site.site_dir / "linkedin/export/Basic_LinkedInDataExport.zip")
    names = archive.namelist()
    assert {"Shares.csv", "Profile.csv"} <= set(names)
    rows = list(csv.DictReader(io.StringIO(archive.read("Shares.csv").decode("utf-8"))))
    assert list(rows[0]) == [
        "Date",
        "ShareLink",
        "ShareCommentary",
        "SharedUrl",
        "MediaUrl",
        "Visibility",
    ]
    posts = [d for d in load_documents("linkedin") if d.kind == "post"]
    assert len([r for r in rows if r["ShareCommentary"]]) == len(posts)
    assert any("+46 70 123 45 67" in r["ShareCommentary"] for r in rows)
    articles = [n for n in names if n.startswith("Articles/Articles/") and n.endswith(".html")]
    assert len(articles) == 4
    assert b'class="published"' in archive.read(articles[0])


def test_git_repositories_have_history_and_two_languages(site: SiteManifest):
    suffixes = {"tidy-vectors": {".py", ".sql"}, "dagcheck": {".py", ".go"}}
    for repo in site.repos:
        path = site.site_dir / repo.path
        log = subprocess.run(
            ["git", "-C", str(path), "log", "--format=%H %an %ad"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()
        assert len(log) == repo.commits >= 5
        assert log[0].split()[0] == repo.head and "Ada Lindqvist" in log[0]
        tracked = subprocess.run(
            ["git", "-C", str(path), "ls-files"], capture_output=True, text=True, check=True
        ).stdout.split()
        assert suffixes[repo.name] <= {Path(t).suffix for t in tracked}
        assert any(t.endswith(".png") for t in tracked)
        assert any(t.startswith(("vendor/", "node_modules/")) for t in tracked)
        huge = [t for t in tracked if (path / t).stat().st_size > 1_000_000]
        assert len(huge) == 1 and huge[0] in repo.skip_paths
        assert (path / "README.md").exists() and "README.md" in repo.text_files
        png = next(t for t in tracked if t.endswith(".png"))
        assert (path / png).read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


# sample server ---------------------------------------------------------------------------------


def test_content_types_and_head(client: httpx.Client):
    expected = {
        "/blog/": "text/html; charset=utf-8",
        "/medium/feed/@ada-lindqvist": "application/rss+xml",
        "/substack/api/v1/archive": "application/json",
        "/linkedin/export/Basic_LinkedInDataExport.zip": "application/zip",
        "/sitemap.xml": "application/xml",
        "/robots.txt": "text/plain",
    }
    for path, content_type in expected.items():
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith(content_type), path
        assert response.headers["etag"] and response.headers["last-modified"]
    head = client.head("/blog/")
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["content-length"]) == len(client.get("/blog/").content)


def test_absolute_links_point_at_the_running_server(client: httpx.Client, server):
    page = client.get("/blog/the-tuesday-test/").text
    assert f'href="{server.base_url}/blog/the-tuesday-test/"' in page
    assert "sample-author.invalid" not in page


def test_feeds_parse(client: httpx.Client):
    medium = feedparser.parse(client.get("/medium/feed/@ada-lindqvist").content)
    assert not medium.bozo and len(medium.entries) == 10
    assert all(e.content[0].value and "?source=" in e.link for e in medium.entries)
    substack = feedparser.parse(client.get("/substack/feed").content)
    assert not substack.bozo and len(substack.entries) == 10
    assert "Thanks for reading" in substack.entries[0].content[0].value
    broken = feedparser.parse(client.get("/medium/feed/@broken-author").content)
    assert broken.bozo


def test_medium_profile_lists_every_story(client: httpx.Client, site: SiteManifest):
    profile = client.get("/medium/@ada-lindqvist").text
    for doc in site.platforms["medium"].documents:
        assert doc.url + "?source=" in profile
        assert client.get(doc.url).status_code == 200


def test_archive_api_paginates(client: httpx.Client):
    seen: list[dict] = []
    offset = 0
    while page := client.get(
        "/substack/api/v1/archive", params={"sort": "new", "offset": offset, "limit": 4}
    ).json():
        assert len(page) <= 4
        seen += page
        offset += len(page)
    assert len(seen) == 11 and len({e["slug"] for e in seen}) == 11
    assert [e["post_date"] for e in seen] == sorted((e["post_date"] for e in seen), reverse=True)
    assert sum(e["type"] == "newsletter" for e in seen) == 10
    assert {"title", "slug", "post_date", "canonical_url", "subtitle", "type"} <= set(seen[0])
    assert len(client.get("/substack/api/v1/archive").json()) == 11
    assert client.get("/substack/api/v1/archive", params={"offset": "x"}).status_code == 400
    assert client.get(seen[0]["canonical_url"]).status_code == 200


def test_conditional_get_returns_304(client: httpx.Client):
    first = client.get("/medium/@ada-lindqvist")
    etag, modified = first.headers["etag"], first.headers["last-modified"]
    by_etag = client.get("/medium/@ada-lindqvist", headers={"If-None-Match": etag})
    assert by_etag.status_code == 304 and by_etag.content == b""
    by_date = client.get("/medium/@ada-lindqvist", headers={"If-Modified-Since": modified})
    assert by_date.status_code == 304
    stale = client.get("/medium/@ada-lindqvist", headers={"If-None-Match": '"other"'})
    assert stale.status_code == 200


def test_editing_a_file_changes_exactly_that_page(site: SiteManifest, tmp_path: Path):
    copy = tmp_path / "site"
    shutil.copytree(site.site_dir, copy, ignore=shutil.ignore_patterns("git"))
    pages = [d.url for d in site.platforms["blog"].documents if not d.defect]
    with (
        SampleServer(copy, burst_limit=None) as srv,
        httpx.Client(base_url=srv.base_url, trust_env=False) as c,
    ):
        etags = {p: c.get(p).headers["etag"] for p in pages}
        srv.mutate("/blog/the-tuesday-test/", "ordinary Tuesday", "ordinary Wednesday")
        statuses = {p: c.get(p, headers={"If-None-Match": etags[p]}).status_code for p in pages}
        assert [p for p, s in statuses.items() if s == 200] == ["/blog/the-tuesday-test/"]
        assert srv.status_counts[("/blog/the-tuesday-test/", 304)] == 0
        assert sum(n for (_, s), n in srv.status_counts.items() if s == 304) == len(pages) - 1


def test_burst_of_requests_gets_429_with_retry_after(site: SiteManifest):
    # A slow refill makes the count exact: five tokens, then nothing for six seconds.
    with (
        SampleServer(site.site_dir, burst_limit=5, burst_window_s=30) as srv,
        httpx.Client(trust_env=False) as c,
    ):
        responses = [c.get(srv.url("/robots.txt")) for _ in range(15)]
        assert [r.status_code for r in responses] == [200] * 5 + [429] * 10
        assert all(r.headers["retry-after"] == "1" for r in responses[5:])
    with SampleServer(site.site_dir, burst_limit=3) as srv, httpx.Client(trust_env=False) as c:
        assert 429 in [c.get(srv.url("/robots.txt")).status_code for _ in range(10)]
        time.sleep(1.05)
        assert c.get(srv.url("/robots.txt")).status_code == 200


def test_flaky_and_unstable_pages_fail_once_per_server(site: SiteManifest):
    for path, first in (("/blog/flaky/", 429), ("/blog/unstable/", 503)):
        with (
            SampleServer(site.site_dir, burst_limit=None) as srv,
            httpx.Client(trust_env=False) as c,
        ):
            failed = c.get(srv.url(path))
            assert failed.status_code == first and failed.headers["retry-after"] == "1"
            assert c.get(srv.url(path)).status_code == 200
            assert c.get(srv.url(path)).status_code == 200
            assert srv.hits[path] == 3


def test_broken_pages_misbehave_as_documented(client: httpx.Client, server: SampleServer):
    assert client.get("/blog/broken-500/").status_code == 500

    truncated = client.get("/blog/truncated/")
    assert truncated.status_code == 200
    assert int(truncated.headers["content-length"]) == len(truncated.content)
    assert truncated.content.endswith(b"<h2") and b"</html>" not in truncated.content

    wrong = client.get("/blog/wrong-charset/")
    assert "charset=utf-8" in wrong.headers["content-type"]
    with pytest.raises(UnicodeDecodeError):
        wrong.content.decode("utf-8")
    assert "café" in wrong.content.decode("cp1252") and "naïve" in wrong.content.decode("cp1252")

    with pytest.raises(httpx.TooManyRedirects):
        client.get("/blog/loop-a/", follow_redirects=True)

    huge = client.head("/blog/huge/")
    assert int(huge.headers["content-length"]) >= 12 * 1024 * 1024
    with client.stream("GET", "/blog/huge/") as streamed:
        assert next(streamed.iter_bytes()).startswith(b"<!DOCTYPE html>")

    for path, target in (
        ("/blog/go-internal/", "http://169.254.169.254/latest/meta-data/"),
        ("/blog/go-private/", "http://10.0.0.1/secret"),
    ):
        response = client.get(path)
        assert response.status_code == 302 and response.headers["location"] == target


def test_redirects(client: httpx.Client, server: SampleServer):
    moved = {
        "/blog/2023/tuesday-test/": "/blog/the-tuesday-test/",
        "/blog/the-tuesday-test": "/blog/the-tuesday-test/",
        "/medium/@ada-lindqvist/lora-on-a-budget": "/medium/@ada-lindqvist/lora-on-a-budget-",
        "/medium/@ada-lindqvist/": "/medium/@ada-lindqvist",
    }
    for path, target in moved.items():
        response = client.get(path)
        assert response.status_code == 301, path
        assert response.headers["location"].startswith(server.base_url + target), path
        assert client.get(path, follow_redirects=True).status_code == 200


def test_robots_txt_disallows_drafts_that_exist(client: httpx.Client, server: SampleServer):
    robots = client.get("/robots.txt").text
    assert "User-agent: *\nDisallow: /blog/drafts/" in robots
    assert "crawl-delay" not in robots.lower()
    parser = urllib.robotparser.RobotFileParser()
    parser.parse(robots.splitlines())
    draft = "/blog/drafts/feature-stores/"
    assert not parser.can_fetch("TwinOpsBot", server.url(draft))
    assert parser.can_fetch("TwinOpsBot", server.url("/blog/"))
    sitemap = client.get("/sitemap.xml").text
    for path in (
        draft,
        "/blog/flaky/",
        "/blog/broken-500/",
        "/blog/truncated/",
        "/blog/huge/",
        "/blog/wrong-charset/",
        "/blog/loop-a/",
        "/blog/go-internal/",
    ):
        assert f"<loc>{server.url(path)}</loc>" in sitemap, path
    before = server.hits[draft]
    assert client.get(draft).status_code == 200
    assert server.hits[draft] == before + 1


def test_blog_index_pages_reach_every_article(client: httpx.Client, site: SiteManifest):
    found: list[str] = []
    path: str | None = "/blog/"
    pages = 0
    while path:
        page = client.get(path).text
        pages += 1
        found += re.findall(r'class="post-card-title"><a href="([^"]+)"', page)
        older = re.search(r'class="older" rel="next" href="([^"]+)"', page)
        path = older.group(1) if older else None
    assert pages >= 3
    assert sorted(found) == sorted(d.url for d in site.platforms["blog"].documents)


def test_comments_are_outside_the_article_body(client: httpx.Client):
    pages = [
        client.get(f"/blog/{slug}/").text
        for slug in ("hello-again", "the-tuesday-test", "dag-review-checklist", "cost-per-answer")
    ]
    with_comments = [p for p in pages if 'class="comment-author' in p]
    assert with_comments
    for page in with_comments:
        body = page.split('<div class="post-content e-content">', 1)[1].split("</div>", 1)[0]
        for name in re.findall(r'<b class="fn">([^<]+)</b>', page):
            assert name not in body and name != AUTHOR.name


def test_git_repository_clones_over_dumb_http(site: SiteManifest, server, tmp_path: Path):
    repo = site.repos[0]
    target = tmp_path / "clone"
    # Loopback only: keep any configured HTTP proxy out of the way.
    env = {**os.environ, "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"}
    subprocess.run(
        ["git", "clone", "-q", server.url(repo.http_path), str(target)],
        env=env,
        check=True,
        capture_output=True,
        timeout=60,
    )
    head = subprocess.run(
        ["git", "-C", str(target), "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()
    assert head == repo.head


def test_latency_and_hit_counting(site: SiteManifest):
    with SampleServer(site.site_dir, latency_ms=60, burst_limit=None) as srv:
        started = time.perf_counter()
        assert httpx.get(srv.url("/robots.txt"), trust_env=False).status_code == 200
        assert time.perf_counter() - started >= 0.06
        assert srv.hits == {"/robots.txt": 1}
        assert srv.requests[0].status == 200
        srv.reset_counters()
        assert not srv.hits


def test_private_files_and_unknown_paths_are_404(client: httpx.Client):
    for path in ("/_routes.json", "/_manifest.json", "/nowhere/", "/blog/../_routes.json"):
        assert client.get(path).status_code == 404, path
    assert json.loads(client.get("/substack/api/v1/posts/a-year-of-pgvector").text)["body_html"]
