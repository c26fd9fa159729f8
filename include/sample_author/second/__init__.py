"""A second demo author, Ines Okafor (community orchards), served by the same sample server.

from sample_author.second import build_second_site

manifest = build_second_site(tmp_dir)          # her notes site and newsletter
with SampleServer(tmp_dir) as server:          # describes her at /.well-known/...
    links = second_links(server.base_url)
"""

from sample_author.second.site import (
    SECOND_AUTHOR,
    build_second_site,
    load_second_documents,
    second_links,
    second_prefixes,
)

__all__ = [
    "SECOND_AUTHOR",
    "build_second_site",
    "load_second_documents",
    "second_links",
    "second_prefixes",
]
