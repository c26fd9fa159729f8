"""LinkedIn: a public profile page, article ("pulse") pages and the member data-export ZIP.

The export is the authoritative source for posts, as it is for a real member: `Shares.csv`
(`Date,ShareLink,ShareCommentary,SharedUrl,MediaUrl,Visibility`), one HTML file per article under
`Articles/Articles/`, `Profile.csv`, and a `Connections.csv` of other people that a crawler must
not treat as the author's writing.
"""

from __future__ import annotations

import csv
import hashlib
import html
import io
import zipfile
from collections.abc import Sequence
from datetime import datetime

from sample_author.content import AUTHOR, SourceDocument
from sample_author.markup import markdown_to_html
from sample_author.writer import BUILD_TIME, ZIP, SiteWriter, absolute

PREFIX = "/linkedin"
PROFILE_PATH = f"{PREFIX}/in/{AUTHOR.handle}"
EXPORT_PATH = f"{PREFIX}/export/Basic_LinkedInDataExport.zip"
ZIP_TIME = (2024, 12, 31, 12, 0, 0)
SHARE_COLUMNS = ["Date", "ShareLink", "ShareCommentary", "SharedUrl", "MediaUrl", "Visibility"]
PROFILE_COLUMNS = [
    "First Name",
    "Last Name",
    "Maiden Name",
    "Address",
    "Birth Date",
    "Headline",
    "Summary",
    "Industry",
    "Zip Code",
    "Geo Location",
    "Twitter Handles",
    "Websites",
    "Instant Messengers",
]
SHARED_URLS = {
    "newsletter-launch": absolute("/substack/p/why-this-newsletter"),
    "hiring-platform-engineer": "https://www.linkedin.com/pulse/what-i-look-for-when-hiring-ada-lindqvist",
}
CONNECTIONS = (
    ("Jonas", "Berg", "Nordlane Logistics", "Senior Data Engineer", "14 Mar 2019"),
    ("Priya", "Raman", "Fjord Analytics", "Head of Data", "02 Nov 2020"),
    ("Mikko", "Virtanen", "Kide Cloud", "Staff Engineer", "21 Jun 2021"),
    ("Sofia", "Almeida", "Independent", "ML Consultant", "09 Feb 2022"),
    ("Linnea", "Holm", "Nordlane Logistics", "Analytics Engineer", "30 Aug 2023"),
)


def share_urn(slug: str) -> str:
    """A 19-digit share id, stable per slug, like LinkedIn's urn:li:share ids."""
    return "7" + str(int(hashlib.sha256(f"share:{slug}".encode()).hexdigest(), 16))[:18]


def share_link(slug: str) -> str:
    """The post's permalink as the export writes it."""
    return f"https://www.linkedin.com/feed/update/urn%3Ali%3Ashare%3A{share_urn(slug)}"


def pulse_path(doc: SourceDocument) -> str:
    """Site path of an article: /linkedin/pulse/<slug>-<handle>/."""
    return f"{PREFIX}/pulse/{doc.slug}-{AUTHOR.handle}/"


def export_article_name(doc: SourceDocument) -> str:
    """Archive member name of an article: Articles/Articles/<date>-<slug>.html."""
    return f"Articles/Articles/{doc.date:%Y-%m-%d}-{doc.slug}.html"


def _cut(text: str, limit: int) -> str:
    return text[:limit].rsplit(" ", 1)[0]


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def shares_csv(posts: Sequence[SourceDocument]) -> str:
    """Shares.csv: one row per post, newest first, plus one repost without commentary."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(SHARE_COLUMNS)
    rows = [
        (
            p.date,
            [
                _stamp(p.date),
                share_link(p.slug),
                p.body.strip(),
                SHARED_URLS.get(p.slug, ""),
                "",
                "MEMBER_NETWORK",
            ],
        )
        for p in posts
    ]
    repost_date = datetime(2024, 3, 28, 10, 2, tzinfo=BUILD_TIME.tzinfo)
    rows.append(
        (
            repost_date,
            [
                _stamp(repost_date),
                share_link("repost-meetup"),
                "",
                "https://www.linkedin.com/feed/update/urn:li:activity:7179000000000000000",
                "",
                "MEMBER_NETWORK",
            ],
        )
    )
    for _, row in sorted(rows, key=lambda r: r[0], reverse=True):
        writer.writerow(row)
    return out.getvalue()


def profile_csv() -> str:
    """Profile.csv with the member's public profile fields."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(PROFILE_COLUMNS)
    first, last = AUTHOR.name.split(" ", 1)
    writer.writerow(
        [
            first,
            last,
            "",
            "",
            "",
            AUTHOR.headline,
            AUTHOR.bio,
            "Software Development",
            "",
            AUTHOR.location,
            "",
            "[PERSONAL:lindqvist.example]",
            "",
        ]
    )
    return out.getvalue()


def connections_csv() -> str:
    """Connections.csv with LinkedIn's notes preamble: other people, not the author's text."""
    out = io.StringIO()
    out.write(
        'Notes:\n"When exporting your connection data, you may notice that some of the '
        "email addresses are missing. You will only see email addresses for connections "
        'who have allowed their connections to see or download their email address."\n\n'
    )
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        ["First Name", "Last Name", "URL", "Email Address", "Company", "Position", "Connected On"]
    )
    for first, last, company, position, connected in CONNECTIONS:
        url = f"https://www.linkedin.com/in/{first.lower()}-{last.lower()}"
        writer.writerow([first, last, url, "", company, position, connected])
    return out.getvalue()


def export_article_html(doc: SourceDocument) -> str:
    """An article as the export stores it: title, created/published stamps, body HTML."""
    stamp = doc.date.strftime("%Y-%m-%d %H:%M")
    title = html.escape(doc.title)
    link = f"https://www.linkedin.com/pulse/{doc.slug}-{AUTHOR.handle}"
    return (
        f'<html><head><title>{title}</title></head><body><h1><a href="{link}">{title}</a></h1>'
        f'<p class="created">Created on {stamp}</p><p class="published">Published on {stamp}</p>'
        f"<div>{markdown_to_html(doc.body)}</div></body></html>\n"
    )


def build_export_zip(posts: Sequence[SourceDocument], articles: Sequence[SourceDocument]) -> bytes:
    """The data-export archive, byte-for-byte reproducible (fixed member dates and order)."""
    members = {
        "Profile.csv": profile_csv(),
        "Shares.csv": shares_csv(posts),
        "Connections.csv": connections_csv(),
    }
    for doc in articles:
        members[export_article_name(doc)] = export_article_html(doc)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in sorted(members):
            info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3
            info.external_attr = 0o644 << 16
            archive.writestr(info, members[name].encode("utf-8"))
    return buffer.getvalue()


def _chrome(title: str, canonical: str, main: str) -> str:
    return f"""<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>{html.escape(title)}</title>
<link rel="canonical" href="{absolute(canonical)}">
<meta name="robots" content="noarchive">
</head>
<body class="public-profile">
<header class="nav"><a class="nav__logo-link" href="{PREFIX}/">LinkedIn</a>
<a class="nav__button-secondary" href="{PREFIX}/login">Sign in</a>
<a class="nav__button-primary" href="{PREFIX}/signup">Join now</a></header>
{main}
<div class="contextual-sign-in-modal"><h2>Sign in to view more content</h2>
<p>Create your free account or sign in to continue your search</p>
<a href="{PREFIX}/login">Sign in</a> <a href="{PREFIX}/signup">Join now</a>
<p>By clicking Continue to join or sign in, you agree to LinkedIn's User Agreement, Privacy
Policy, and Cookie Policy.</p></div>
<footer class="li-footer"><span>LinkedIn © 2024</span>
<a href="{PREFIX}/legal/user-agreement">User Agreement</a>
<a href="{PREFIX}/legal/privacy-policy">Privacy Policy</a>
<a href="{PREFIX}/legal/cookie-policy">Cookie Policy</a></footer>
</body></html>
"""


def render_profile(posts: Sequence[SourceDocument], articles: Sequence[SourceDocument]) -> str:
    """Public profile: headline, about, experience, articles and a few recent posts (cut)."""
    esc = html.escape
    recent = sorted(posts, key=lambda p: p.date, reverse=True)[:4]
    activity = "\n".join(
        f'<li class="activity-card"><p class="activity-card__text">{esc(_cut(p.body, 160))}…'
        f'<button class="see-more">see more</button></p></li>'
        for p in recent
    )
    article_items = "\n".join(
        f'<li class="article-card"><a href="{pulse_path(a)}">{esc(a.title)}</a>'
        f'<span class="article-card__date">{a.date:%b %d, %Y}</span></li>'
        for a in sorted(articles, key=lambda a: a.date, reverse=True)
    )
    main = f"""<main class="main">
<section class="top-card-layout"><h1 class="top-card-layout__title">{esc(AUTHOR.name)}</h1>
<h2 class="top-card-layout__headline">{esc(AUTHOR.headline)}</h2>
<div class="top-card__subline-item">{esc(AUTHOR.location)} · 500+ connections</div></section>
<section class="summary"><h2>About</h2><p>{esc(AUTHOR.bio)}</p></section>
<section class="experience"><h2>Experience</h2><ul>
<li><h3>Data Platform Lead</h3><h4>{esc(AUTHOR.employer)}</h4><span>2019 – Present</span></li>
<li><h3>Senior Data Engineer</h3><h4>Saldo Bank</h4><span>2013 – 2019</span></li></ul></section>
<section class="articles"><h2>Articles by {esc(AUTHOR.name.split()[0])}</h2><ul>
{article_items}
</ul></section>
<section class="activity"><h2>Activity</h2><ul>
{activity}
</ul><a href="{PREFIX}/login">Sign in to see all activity</a></section>
<section class="people-also-viewed"><h2>People also viewed</h2><ul>
<li>Jonas Berg – Senior Data Engineer at {esc(AUTHOR.employer)}</li>
<li>Priya Raman – Head of Data at Fjord Analytics</li></ul></section>
</main>"""
    return _chrome(f"{AUTHOR.name} - {AUTHOR.employer} | LinkedIn", PROFILE_PATH, main)


def render_pulse(doc: SourceDocument) -> str:
    """An article page: title, author card, body, reactions."""
    esc = html.escape
    main = f"""<main class="main"><article class="article-main">
<h1 class="pulse-title">{esc(doc.title)}</h1>
<div class="base-main-card"><a href="{PROFILE_PATH}">{esc(AUTHOR.name)}</a>
<p>{esc(AUTHOR.headline)}</p><time>Published {doc.date:%b %d, %Y}</time>
<button>+ Follow</button></div>
<div class="article-main__content" data-test-id="article-content-blocks">
{markdown_to_html(doc.body, {"p": "article-main__content-paragraph"})}
</div>
<div class="social-details"><span>{40 + len(doc.slug) * 3} reactions</span> ·
<span>{len(doc.tags) * 4} comments</span>
<button>Like</button> <button>Comment</button> <button>Share</button></div>
</article>
<section class="more-articles"><h2>More articles by {esc(AUTHOR.name)}</h2>
<a href="{PROFILE_PATH}">See all</a></section>
</main>"""
    return _chrome(f"{doc.title} | LinkedIn", pulse_path(doc), main)


def write_linkedin(
    writer: SiteWriter, posts: Sequence[SourceDocument], articles: Sequence[SourceDocument]
) -> None:
    """Write the profile page, article pages and the export archive."""
    writer.page(PROFILE_PATH, render_profile(posts, articles))
    writer.redirect(PROFILE_PATH + "/", PROFILE_PATH, 301)
    for doc in articles:
        writer.page(pulse_path(doc), render_pulse(doc), modified=doc.date)
    writer.page(EXPORT_PATH, build_export_zip(posts, articles), content_type=ZIP)
