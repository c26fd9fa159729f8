"""Build the sample author's whole public footprint as a static directory tree.

`build_site(out_dir)` renders the blog, Medium, Substack and LinkedIn pages, feeds, JSON API
files and the LinkedIn export ZIP, writes a route table the sample server reads, builds the git
repositories under `out_dir/git/`, and returns a `SiteManifest` saying what a crawler should
find. Apart from git internals the output is byte-identical on every build.
"""

from __future__ import annotations

import html
import shutil
from pathlib import Path

from sample_author import blog, linkedin, medium, substack
from sample_author.content import AUTHOR, SourceDocument, load_documents, parse_date
from sample_author.gitrepos import BuiltRepo, build_repos
from sample_author.manifest import DefectPage, DocumentRef, PlatformManifest, RepoRef, SiteManifest
from sample_author.synthetic import synthetic_articles
from sample_author.writer import ROUTES_FILE, TEXT, XML, SiteWriter, absolute

ROBOTS_TXT = f"""# robots.txt for {AUTHOR.name}'s site
User-agent: *
Disallow: /blog/drafts/

User-agent: ExampleAdBot
Disallow: /

Sitemap: {absolute("/sitemap.xml")}
"""

DEFECTS: tuple[DefectPage, ...] = (
    DefectPage(
        path="/blog/flaky/",
        behaviour="429 with Retry-After: 1 on the first request, then 200",
        expect="retry after the delay and store the article",
    ),
    DefectPage(
        path="/blog/unstable/",
        behaviour="503 with Retry-After: 1 once, then 200",
        expect="retry and store the article",
    ),
    DefectPage(
        path="/blog/wrong-charset/",
        behaviour="header and meta say UTF-8, body bytes are Windows-1252",
        expect="detect the mismatch; store 'café' and 'naïve' intact",
    ),
    DefectPage(
        path="/blog/truncated/",
        behaviour="HTML cut mid-tag, Content-Length matches the short body",
        expect="do not store as a complete article",
    ),
    DefectPage(
        path="/blog/broken-500/",
        behaviour="always 500",
        expect="record the failure, continue with the rest",
    ),
    DefectPage(
        path="/blog/loop-a/",
        behaviour="302 to /blog/loop-b/, which 302s back",
        expect="stop after a bounded number of redirects, record the failure",
    ),
    DefectPage(
        path="/blog/huge/",
        behaviour="12 MB HTML page",
        expect="abort at the size limit, record the failure",
    ),
    DefectPage(
        path="/blog/go-internal/",
        behaviour="302 to http://169.254.169.254/latest/meta-data/",
        expect="refuse to follow a redirect to a link-local address",
    ),
    DefectPage(
        path="/blog/go-private/",
        behaviour="302 to http://10.0.0.1/secret",
        expect="refuse to follow a redirect to a private address",
    ),
    DefectPage(
        path="/blog/2023/tuesday-test/",
        behaviour="301 to /blog/the-tuesday-test/",
        expect="store the article once, under the canonical URL",
    ),
    DefectPage(
        path="/blog/drafts/feature-stores/",
        behaviour="listed in the sitemap, disallowed by robots.txt",
        expect="never request it",
    ),
    DefectPage(
        path="/medium/feed/@broken-author", behaviour="invalid XML", expect="record a parse failure"
    ),
    DefectPage(
        path="/medium/feed/@ada-lindqvist",
        behaviour="lists only the latest 10 of 12 stories; links carry ?source= tracking queries",
        expect="find the rest on the profile page; strip the query when canonicalising",
    ),
    DefectPage(
        path="/substack/p/open-thread-whats-in-your-stack",
        behaviour="archive entry of type 'thread', no article body",
        expect="skip it (only type 'newsletter')",
    ),
    DefectPage(
        path="/linkedin/export/Basic_LinkedInDataExport.zip",
        behaviour="Shares.csv has one repost row with empty ShareCommentary; "
        "Connections.csv lists other people",
        expect="skip empty commentary; ignore Connections.csv",
    ),
    DefectPage(
        path="/blog/",
        behaviour="article pages carry a cookie banner, share buttons, a "
        "newsletter box and readers' comments",
        expect="keep only div.post-content; never attribute comments to the author",
    ),
)


def _doc_ref(doc: SourceDocument, url: str, *, synthetic: bool = False) -> DocumentRef:
    return DocumentRef(
        key=doc.key,
        platform=doc.platform,
        kind=doc.kind,
        title=doc.title,
        slug=doc.slug,
        date=doc.date,
        url=url,
        words=doc.words,
        tags=list(doc.tags),
        pii=list(doc.pii),
        defect=doc.defect,
        crosspost_of=doc.crosspost_of,
        synthetic=synthetic,
    )


def _sitemap(entries: list[tuple[str, str]]) -> str:
    urls = "\n".join(
        f"<url><loc>{html.escape(absolute(path))}</loc><lastmod>{lastmod}</lastmod></url>"
        for path, lastmod in entries
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n'
        f"{urls}\n</urlset>\n"
    )


def _home_page() -> str:
    links = [
        ("/blog/", "Blog"),
        (medium.PROFILE_PATH, "Medium"),
        ("/substack/", AUTHOR.newsletter + " (Substack)"),
        (linkedin.PROFILE_PATH, "LinkedIn"),
        ("/git/tidy-vectors.git", "git: tidy-vectors"),
        ("/git/dagcheck.git", "git: dagcheck"),
    ]
    items = "\n".join(f'<li><a href="{p}">{html.escape(t)}</a></li>' for p, t in links)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(AUTHOR.name)}</title></head>
<body><h1>{html.escape(AUTHOR.name)}</h1><p>{html.escape(AUTHOR.bio)}</p>
<ul>
{items}
</ul></body></html>
"""


def _prepare(out_dir: Path) -> None:
    """Clear a previous build in `out_dir`; refuse to clobber a directory that is not one."""
    if out_dir.exists() and any(out_dir.iterdir()):
        if not (out_dir / ROUTES_FILE).exists():
            raise ValueError(f"refusing to build into non-empty {out_dir}: not a sample site")
        for child in out_dir.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
    out_dir.mkdir(parents=True, exist_ok=True)


def _repo_ref(repo: BuiltRepo, site_dir: Path) -> RepoRef:
    return RepoRef(
        name=repo.spec.name,
        description=repo.spec.description,
        path=repo.path.relative_to(site_dir).as_posix(),
        bare_path=repo.bare_path.relative_to(site_dir).as_posix(),
        http_path=f"/git/{repo.bare_path.name}",
        head=repo.head,
        commits=repo.commits,
        languages=list(repo.spec.languages),
        text_files=repo.text_files,
        skip_paths=list(repo.spec.skip_paths),
    )


def build_site(out_dir: Path, *, extra_pages: int = 0) -> SiteManifest:
    """Render the whole sample site into `out_dir` and return what it contains.

    `extra_pages` adds that many deterministic filler blog articles (for benchmarks). An existing
    previous build in `out_dir` is replaced; any other non-empty directory is refused.
    """
    out_dir = Path(out_dir).resolve()
    _prepare(out_dir)
    every = load_documents(include_unpublished=True)

    def of(platform: str, kind: str | None = None) -> list[SourceDocument]:
        return [
            d
            for d in every
            if d.platform == platform and d.published and (kind is None or d.kind == kind)
        ]

    extras = synthetic_articles(extra_pages)
    blog_posts = of("blog") + extras
    blog_special = [d for d in every if d.platform == "blog" and not d.published]
    li_posts, li_articles = of("linkedin", "post"), of("linkedin", "article")

    writer = SiteWriter(out_dir)
    blog_paths = blog.write_blog(writer, blog_posts, blog_special)
    medium.write_medium(writer, of("medium"))
    substack.write_substack(writer, of("substack"))
    linkedin.write_linkedin(writer, li_posts, li_articles)
    writer.page("/", _home_page())
    writer.page("/robots.txt", ROBOTS_TXT, content_type=TEXT)
    lastmods = {blog.post_path(d): d.date.date().isoformat() for d in blog_posts + blog_special}
    sitemap_paths = [
        *blog_paths,
        "/blog/2023/tuesday-test/",
        "/blog/broken-500/",
        "/blog/loop-a/",
        "/blog/huge/",
        "/blog/go-internal/",
        "/blog/go-private/",
    ]
    writer.page(
        "/sitemap.xml",
        _sitemap([(p, lastmods.get(p, "2024-12-31")) for p in sitemap_paths]),
        content_type=XML,
    )
    writer.write()
    repos = build_repos(out_dir / "git")

    extra_keys = {d.key for d in extras}
    platforms = {
        "blog": PlatformManifest(
            platform="blog",
            entry_paths=["/blog/", "/sitemap.xml"],
            expected_documents=len(blog_posts),
            documents=[
                _doc_ref(d, blog.post_path(d), synthetic=d.key in extra_keys) for d in blog_posts
            ],
            notes="Articles are in div.post-content; /blog/flaky/ and /blog/unstable/ need one "
            "retry; /blog/wrong-charset/ is Windows-1252 labelled UTF-8.",
        ),
        "medium": PlatformManifest(
            platform="medium",
            entry_paths=[medium.PROFILE_PATH, medium.FEED_PATH],
            expected_documents=len(of("medium")),
            documents=[_doc_ref(d, medium.story_path(d)) for d in of("medium")],
            notes=f"The feed holds only the latest {medium.FEED_LIMIT}; the profile lists all.",
        ),
        "substack": PlatformManifest(
            platform="substack",
            entry_paths=[
                "/substack/",
                f"{substack.ARCHIVE_PATH}?sort=new&offset=0&limit=12",
                substack.FEED_PATH,
            ],
            expected_documents=len(of("substack")),
            documents=[_doc_ref(d, substack.post_path(d.slug)) for d in of("substack")],
            notes="The archive API pages with offset/limit and also lists one 'thread'.",
        ),
        "linkedin": PlatformManifest(
            platform="linkedin",
            entry_paths=[linkedin.PROFILE_PATH, linkedin.EXPORT_PATH],
            expected_documents=len(li_posts) + len(li_articles),
            documents=[_doc_ref(d, linkedin.share_link(d.slug)) for d in li_posts]
            + [_doc_ref(d, linkedin.pulse_path(d)) for d in li_articles],
            notes="Posts come from Shares.csv in the export; articles from Articles/Articles/.",
        ),
        "github": PlatformManifest(
            platform="github",
            entry_paths=[f"/git/{r.bare_path.name}" for r in repos],
            expected_documents=len(repos),
            documents=[
                DocumentRef(
                    key=f"github/{r.spec.name}",
                    platform="github",
                    kind="repository",
                    title=r.spec.name,
                    slug=r.spec.name,
                    date=parse_date(r.spec.commits[-1].date),
                    url=f"/git/{r.bare_path.name}",
                    words=r.doc_words(),
                    tags=[lang.lower() for lang in r.spec.languages],
                )
                for r in repos
            ],
            notes="Repositories are on disk under git/<name> (working copy) and "
            "git/<name>.git (bare, dumb-HTTP clonable).",
        ),
    }
    manifest = SiteManifest(
        author=AUTHOR.name,
        handle=AUTHOR.handle,
        site_dir=out_dir,
        extra_pages=extra_pages,
        platforms=platforms,
        repos=[_repo_ref(r, out_dir) for r in repos],
        defects=list(DEFECTS),
        disallowed_paths=["/blog/drafts/"],
        near_duplicates=[(d.crosspost_of, d.key) for d in every if d.crosspost_of],
    )
    manifest.save()
    return manifest
