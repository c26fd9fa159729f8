"""The second demo author's site: someone other than Ada, on other platforms and markup, served
and described by the same sample server."""

from __future__ import annotations

import httpx

from sample_author.content import AUTHOR
from sample_author.second import SECOND_AUTHOR, build_second_site, second_links
from sample_author.server import DESCRIPTION_PATH, SampleServer


def test_the_second_author_is_someone_else_on_other_platforms(tmp_path) -> None:
    manifest = build_second_site(tmp_path / "site")
    assert (SECOND_AUTHOR.name, SECOND_AUTHOR.handle) != (AUTHOR.name, AUTHOR.handle)
    assert set(manifest.platforms) == {"blog", "substack"}
    assert manifest.total_documents == 8 and manifest.author == SECOND_AUTHOR.name
    note = (tmp_path / "site" / "notes" / "mason-bees-in-the-orchard.html").read_text()
    assert 'class="h-entry"' in note and "post-content" not in note


def test_the_server_describes_the_site_it_serves(tmp_path) -> None:
    build_second_site(tmp_path / "site")
    with SampleServer(tmp_path / "site") as server:
        described = httpx.get(server.url(DESCRIPTION_PATH)).json()
        letter = httpx.get(server.url("/letters/p/the-scion-swap"))
    assert described["author"] == SECOND_AUTHOR.name
    assert described["links"] == second_links(server.base_url)
    assert letter.status_code == 200 and "Dear orchard keepers" in letter.text
