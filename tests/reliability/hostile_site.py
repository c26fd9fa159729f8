"""A local web server for crawler inputs that go wrong: per-path answers, anything from a
clean article to a redirect into the host's own services, plus static files (git over dumb HTTP).

Each route is a `Page` or a callable taking the query string and returning one; unknown paths
are served from `root` when such a file exists, else 404. robots.txt is absent (no rules).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from tests.reliability.server_thread import ServerThread

HTML = "text/html; charset=utf-8"


@dataclass
class Page:
    """One answer: status, headers and body."""

    body: bytes = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": HTML})


Route = Page | Callable[[str], Page]


class HostileSite(ServerThread):
    """Serves `routes` and the files under `root` on 127.0.0.1; a context manager."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.routes: dict[str, Route] = {}
        self.hits: Counter[str] = Counter()
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                site.hits[parts.path] += 1
                page = site.answer(parts.path, parts.query)
                self.send_response(page.status)
                for name, value in page.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(page.body)))
                self.end_headers()
                self.wfile.write(page.body)

            def log_message(self, format: str, *args: object) -> None:
                """Quiet."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        super().__init__()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return self.base + path

    def answer(self, path: str, query: str) -> Page:
        route = self.routes.get(path)
        if route is not None:
            return route(query) if callable(route) else route
        candidate = (self.root / path.lstrip("/")).resolve()
        if candidate.is_file() and self.root.resolve() in candidate.parents:
            binary = {"Content-Type": "application/octet-stream"}
            return Page(candidate.read_bytes(), headers=binary)
        return Page(b"not found", 404, {"Content-Type": "text/plain"})

    def _serve(self) -> None:
        self._server.serve_forever()

    def _shutdown(self) -> None:
        self._server.shutdown()

    def _close(self) -> None:
        self._server.server_close()
