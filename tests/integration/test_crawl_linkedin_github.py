"""The LinkedIn export and git repository crawlers on the sample author's site."""

import dataclasses
import io
import subprocess
import zipfile
from pathlib import Path

import pytest

from tests.reliability.rebinding_dns import RebindingDNS
from twin.crawl.base import CrawlContext
from twin.crawl.gitfetch import GitLimits
from twin.crawl.github import GitHubCrawler
from twin.crawl.http import PoliteClient
from twin.crawl.linkedin import MAX_MEMBER_BYTES, MAX_MEMBERS, LinkedInCrawler
from twin.crawl.policy import CrawlPolicy
from twin.store.object_store import LocalObjectStore

pytestmark = pytest.mark.integration


@pytest.fixture
def ctx(sample_site, tmp_path):
    allow = (f"127.0.0.1:{sample_site.server.port}",)
    policy = CrawlPolicy(allow_private_hosts=allow, per_host_rate=100)
    with PoliteClient(policy) as client:
        yield CrawlContext(
            client,
            LocalObjectStore(tmp_path / "objects"),
            "Ada Lindqvist",
            upload_dir=tmp_path / "uploads",
        )


def test_linkedin_export_yields_every_post_and_article(sample_site, ctx) -> None:
    url = sample_site.server.url("/linkedin/export/Basic_LinkedInDataExport.zip")
    outcome = LinkedInCrawler(ctx).crawl(url)
    expected = {d.title for d in sample_site.manifest.platforms["linkedin"].documents}

    posts = [d for d in outcome.documents if d.kind == "post"]
    articles = [d for d in outcome.documents if d.kind == "article"]
    assert len(outcome.documents) == sample_site.manifest.platforms["linkedin"].expected_documents
    assert {a.title for a in articles} <= expected and len(articles) == 4
    assert all(p.url.startswith("https://www.linkedin.com/feed/update/") for p in posts)
    assert all(d.published_at is not None and d.text for d in outcome.documents)
    assert "## The short version" in next(a.text for a in articles)
    assert outcome.failures == [] and outcome.listing_complete
    assert ctx.archive.exists(outcome.documents[0].raw_key)


def test_linkedin_profile_page_is_skipped_with_the_reason(sample_site, ctx) -> None:
    outcome = LinkedInCrawler(ctx).crawl(sample_site.server.url("/linkedin/in/ada-lindqvist"))
    assert outcome.documents == []
    assert "data export" in outcome.skipped[0].reason
    assert sample_site.server.hits.get("/linkedin/in/ada-lindqvist", 0) == 0


@pytest.mark.parametrize("repo", ["tidy-vectors", "dagcheck"])
def test_repository_over_http_keeps_code_and_docs_and_skips_the_rest(sample_site, ctx, repo):
    url = sample_site.server.url(f"/git/{repo}.git")
    outcome = GitHubCrawler(ctx).crawl(url)
    (doc,) = outcome.documents
    ref = next(r for r in sample_site.manifest.repos if r.name == repo)
    paths = {f.path for f in doc.files}
    skipped = {s.url.split("#", 1)[1]: s.reason for s in outcome.skipped}

    assert doc.title == repo and doc.text.startswith("#")
    assert len({f.language for f in doc.files} - {"markdown", "toml", "text", "yaml"}) >= 2
    assert any(p.startswith("docs/") for p in paths)
    for skip in ref.skip_paths:  # a path, or a folder ending in "/"
        assert any(p == skip or (skip.endswith("/") and p.startswith(skip)) for p in skipped), skip
        assert not any(p == skip or (skip.endswith("/") and p.startswith(skip)) for p in paths)
    code = {f for f in ref.text_files if f.endswith((".py", ".go", ".sql", ".md"))}
    assert code <= paths | {"README.md"}, code - paths
    assert set(ref.text_files) <= paths | set(skipped) | {"README.md"}  # nothing silently dropped
    assert doc.metadata["commit"] and outcome.validators[doc.url][0] == doc.metadata["commit"]


def test_unchanged_repository_is_not_cloned_again(sample_site, ctx) -> None:
    url = sample_site.server.url("/git/dagcheck.git")
    first = GitHubCrawler(ctx).crawl(url)
    ctx.known_validators = lambda urls: {
        u: first.validators[u] for u in urls if u in first.validators
    }
    second = GitHubCrawler(ctx).crawl(url)
    assert second.documents == [] and second.not_modified == [first.documents[0].url]


def serve_repository(sample_site, name: str, build) -> str:
    """A bare repository built by `build(worktree)`, served over dumb HTTP by the sample site."""
    work = sample_site.home / f"{name}-work"
    work.mkdir()
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run([*git, "init", "-q", "-b", "main", str(work)], check=True)
    build(work)
    subprocess.run([*git, "-C", str(work), "add", "-A"], check=True)
    subprocess.run([*git, "-C", str(work), "commit", "-q", "-m", "init"], check=True)
    bare = sample_site.home / "site" / "git" / f"{name}.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(bare)], check=True)
    subprocess.run(["git", "-C", str(bare), "update-server-info"], check=True)
    return sample_site.server.url(f"/git/{name}.git")


def test_symbolic_links_in_a_repository_are_never_followed(sample_site, ctx) -> None:
    def build(work):
        (work / "README.md").write_text("# links\n\nA repository with links out of itself.\n")
        (work / "main.py").write_text("def main():\n    return 1\n")
        (work / "hostname.txt").symlink_to("/etc/hostname")
        (work / "passwd.py").symlink_to("/etc/passwd")
        (work / "etc").symlink_to("/etc")

    url = serve_repository(sample_site, "links", build)
    outcome = GitHubCrawler(ctx).crawl(url)

    (doc,) = outcome.documents
    skipped = {s.url.split("#", 1)[1]: s.reason for s in outcome.skipped}
    assert {f.path for f in doc.files} == {"main.py"}
    assert {"hostname.txt", "passwd.py", "etc"} <= set(skipped)
    assert all("symbolic link" in skipped[p] for p in ("hostname.txt", "passwd.py", "etc"))
    host_files = {Path("/etc/hostname").read_text(), Path("/etc/passwd").read_text()}
    assert not any(f.text in host_files for f in doc.files)


def test_git_is_pinned_to_the_address_the_guard_checked(sample_site, ctx) -> None:
    # DNS rebinding against git: a real DNS server gives the allowed sample site first and the
    # metadata address to every later lookup. git must use the checked address, never look again.
    port = sample_site.server.port
    with RebindingDNS("repos.rebind.test", ["127.0.0.1", "169.254.169.254"]) as dns:
        policy = ctx.client.policy.model_copy(update={"dns_server": dns.address})
        with PoliteClient(policy) as client:
            crawler = GitHubCrawler(dataclasses.replace(ctx, client=client))
            outcome = crawler.crawl(f"http://repos.rebind.test:{port}/git/dagcheck.git")
            second = GitHubCrawler(dataclasses.replace(ctx, client=client)).crawl(
                f"http://repos.rebind.test:{port}/git/dagcheck.git"
            )

    (doc,) = outcome.documents
    assert doc.title == "dagcheck" and doc.files and outcome.failures == []
    assert dns.queries["A"] == 2  # one lookup per crawl: git itself never resolved the name
    assert second.documents == [] and "169.254.169.254" in second.failures[0].reason


def test_a_clone_over_the_size_bound_is_stopped(sample_site, ctx) -> None:
    small = dataclasses.replace(ctx, git_limits=GitLimits(timeout_s=60, max_bytes=20_000))
    outcome = GitHubCrawler(small).crawl(sample_site.server.url("/git/tidy-vectors.git"))
    assert outcome.documents == []
    assert "larger than 20000 bytes" in outcome.failures[0].reason


def test_a_repository_on_a_private_address_is_refused(ctx) -> None:
    outcome = GitHubCrawler(ctx).crawl("http://10.0.0.7/org/repo.git")
    assert outcome.documents == [] and "10.0.0.7" in outcome.failures[0].reason


def sample_export(sample_site) -> bytes:
    return next((sample_site.home / "site").rglob("Basic_LinkedInDataExport.zip")).read_bytes()


def export_with(sample_site, extra: dict[str, bytes], *, level: int = 6) -> bytes:
    """The sample export with `extra` members added (or replaced)."""
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(sample_export(sample_site))) as source,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=level) as target,
    ):
        for name in source.namelist():
            if name not in extra:
                target.writestr(name, source.read(name))
        for name, data in extra.items():
            target.writestr(name, data)
    return out.getvalue()


def article(title: str, href: str) -> bytes:
    return (
        f'<html><head><title>{title}</title></head><body><h1><a href="{href}">{title}</a></h1>'
        '<p class="published">Published on 2024-05-01 08:00</p><div><p>'
        + "A paragraph about pipelines and the people who run them. " * 8
        + "</p></div></body></html>"
    ).encode()


def test_linkedin_export_is_read_from_the_upload_folder(sample_site, ctx) -> None:
    ctx.upload_dir.mkdir()
    (ctx.upload_dir / "export.zip").write_bytes(sample_export(sample_site))
    (ctx.upload_dir / "hosts.zip").symlink_to("/etc/hosts")

    outcome = LinkedInCrawler(ctx).crawl("upload://export.zip")
    refused = LinkedInCrawler(ctx).crawl("upload://hosts.zip")
    escaped = LinkedInCrawler(ctx).crawl("upload://../export.zip")

    expected = sample_site.manifest.platforms["linkedin"].expected_documents
    assert len(outcome.documents) == expected and outcome.failures == []
    assert refused.documents == [] and "not a regular file" in refused.failures[0].reason
    assert escaped.documents == [] and "not a plain .zip file name" in escaped.failures[0].reason


def test_one_bad_article_does_not_fail_the_export(sample_site, ctx) -> None:
    data = export_with(
        sample_site,
        {
            "Articles/Articles/2024-05-01-relative.html": article("Relative", "/pulse/relative-1"),
            "Articles/Articles/2024-05-02-script.html": article("Script", "javascript:alert(1)"),
        },
    )
    ctx.upload_dir.mkdir()
    (ctx.upload_dir / "export.zip").write_bytes(data)

    outcome = LinkedInCrawler(ctx).crawl("upload://export.zip")

    expected = sample_site.manifest.platforms["linkedin"].expected_documents
    urls = {d.url for d in outcome.documents}
    assert len(outcome.documents) == expected + 1
    assert "https://www.linkedin.com/pulse/relative-1" in urls
    (failure,) = outcome.failures
    assert failure.url.endswith("#Articles/Articles/2024-05-02-script.html")
    assert "'javascript:alert(1)' is not a web page" in failure.reason


def test_zip_bombs_and_oversize_members_are_refused_per_member(sample_site, ctx) -> None:
    bomb = b"<html>" + b" " * (MAX_MEMBER_BYTES // 2) + b"</html>"  # compresses ~1000 times
    data = export_with(sample_site, {"Articles/Articles/2024-06-01-bomb.html": bomb}, level=9)
    ctx.upload_dir.mkdir()
    (ctx.upload_dir / "export.zip").write_bytes(data)

    outcome = LinkedInCrawler(ctx).crawl("upload://export.zip")

    expected = sample_site.manifest.platforms["linkedin"].expected_documents
    assert len(outcome.documents) == expected
    (failure,) = outcome.failures
    assert failure.url.endswith("2024-06-01-bomb.html") and "ZIP bomb" in failure.reason


def test_an_export_with_too_many_members_is_refused(sample_site, ctx) -> None:
    members = {f"junk/{n}.txt": b"x" for n in range(MAX_MEMBERS + 1)}
    ctx.upload_dir.mkdir()
    (ctx.upload_dir / "export.zip").write_bytes(export_with(sample_site, members, level=1))

    outcome = LinkedInCrawler(ctx).crawl("upload://export.zip")

    assert outcome.documents == []
    assert f"more than {MAX_MEMBERS}" in outcome.failures[0].reason
