"""The bundled demo author, Ada Lindqvist: her writing, a site generator and a sample server.

from sample_author import SampleServer, build_site

manifest = build_site(tmp_dir)                 # static site + git repositories
with SampleServer(tmp_dir) as server:          # loopback HTTP, realistic behaviour
    links = manifest.links(server.base_url)    # entry URLs a crawler should be given
"""

from sample_author.content import AUTHOR, SourceDocument, load_documents
from sample_author.manifest import SiteManifest, load_manifest
from sample_author.server import SampleServer, serve
from sample_author.site import build_site

__all__ = [
    "AUTHOR",
    "SampleServer",
    "SiteManifest",
    "SourceDocument",
    "build_site",
    "load_documents",
    "load_manifest",
    "serve",
]
