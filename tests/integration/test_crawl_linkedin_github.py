"""The LinkedIn export and git repository crawlers on the sample author's site."""

import subprocess

import pytest

from twin.crawl.base import CrawlContext
from twin.crawl.github import GitHubCrawler
from twin.crawl.http import PoliteClient
from twin.crawl.linkedin import LinkedInCrawler
from twin.crawl.policy import CrawlPolicy
from twin.store.object_store import LocalObjectStore

pytestmark = pytest.mark.integration


@pytest.fixture
def ctx(sample_site, tmp_path):
    policy = CrawlPolicy(allow_private_hosts=("127.0.0.1",), per_host_rate=100)
    with PoliteClient(policy) as client:
        yield CrawlContext(client, LocalObjectStore(tmp_path / "objects"), "Ada Lindqvist")


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


def test_local_repository_path_and_file_url(sample_site, ctx) -> None:
    path = sample_site.manifest.repo_dirs()["tidy-vectors"]
    head = subprocess.run(
        ["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    for url in (str(path), path.as_uri()):
        (doc,) = GitHubCrawler(ctx).crawl(url).documents
        assert doc.metadata["commit"] == head and doc.url == path.as_uri()


def test_a_repository_on_a_private_address_is_refused(ctx) -> None:
    outcome = GitHubCrawler(ctx).crawl("http://10.0.0.7/org/repo.git")
    assert outcome.documents == [] and "10.0.0.7" in outcome.failures[0].reason
