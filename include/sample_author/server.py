"""A loopback HTTP server for a built sample site that behaves like the real platforms.

It serves the files `build_site` wrote, following the site's route table (`_routes.json`):
correct content types, HEAD, ETag and Last-Modified with 304 answers to conditional requests,
redirects, a paginated archive API, per-client rate limiting (429 + Retry-After), one-off 429/503
pages, a permanent 500, an oversize page, and configurable latency. File contents are read on
every request, so editing a file under the site directory (or calling `mutate`) changes exactly
that page on the next request.

    with SampleServer(site_dir, latency_ms=20) as srv:
        httpx.get(srv.url("/blog/"))
        assert srv.hits["/blog/drafts/feature-stores/"] == 0
"""

from __future__ import annotations

import argparse
import hashlib
import json
import posixpath
import socket
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from email.utils import formatdate, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from sample_author.writer import (
    BUILD_TIME,
    HTML,
    JSON,
    PLACEHOLDER_ORIGIN,
    ROUTES_FILE,
    TEXT,
    XML,
    ZIP,
)

DEFAULT_BURST_LIMIT = 50
DEFAULT_HUGE_BYTES = 12 * 1024 * 1024
_SUFFIX_TYPES = {
    ".html": HTML,
    ".xml": XML,
    ".json": JSON,
    ".txt": TEXT,
    ".zip": ZIP,
    ".png": "image/png",
    ".css": "text/css; charset=utf-8",
    ".md": "text/markdown; charset=utf-8",
}


# The site describes itself (author, source links, URL prefix per platform) at this path.
DESCRIPTION_PATH = "/.well-known/twin-demo-author.json"


@dataclass(frozen=True)
class RequestRecord:
    """One request as the server saw it."""

    method: str
    path: str
    query: str
    status: int
    client: str


@dataclass
class Response:
    """What the server will send: status, headers and body."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


def _message(status: int, text: str, **headers: str) -> Response:
    body = f"<!DOCTYPE html><html><body><h1>{status}</h1><p>{text}</p></body></html>\n".encode()
    return Response(status, {"Content-Type": HTML, **headers}, body)


def _etag_matches(header: str, etag: str) -> bool:
    candidates = {c.strip().removeprefix("W/") for c in header.split(",")}
    return "*" in candidates or etag in candidates


class _RouteTable:
    """The site's route table, reloaded when `_routes.json` changes on disk."""

    def __init__(self, site_dir: Path) -> None:
        self.path = site_dir / ROUTES_FILE
        self._lock = threading.Lock()
        self._stamp: float | None = None
        self.routes: dict[str, dict[str, Any]] = {}
        self.redirects: dict[str, dict[str, Any]] = {}

    def refresh(self) -> None:
        try:
            stamp = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            stamp = None
        with self._lock:
            if stamp == self._stamp:
                return
            table = json.loads(self.path.read_text("utf-8")) if stamp is not None else {}
            self.routes = table.get("routes", {})
            self.redirects = table.get("redirects", {})
            self._stamp = stamp


class SampleServer:
    """Threaded HTTP server for a built sample site, bound to loopback on a free port.

    `latency_ms` delays every response; `burst_limit` requests per `burst_window_s` seconds are
    allowed per client IP before 429 + `Retry-After: 1` (None disables the limit). `hits`
    counts requests per path (query excluded), `requests` keeps every request with its status.
    """

    def __init__(
        self,
        site_dir: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        latency_ms: float = 0,
        burst_limit: int | None = DEFAULT_BURST_LIMIT,
        burst_window_s: float = 1.0,
        huge_bytes: int = DEFAULT_HUGE_BYTES,
        quiet: bool = True,
    ) -> None:
        self.site_dir = Path(site_dir).resolve()
        if not (self.site_dir / ROUTES_FILE).exists():
            raise FileNotFoundError(f"{self.site_dir} is not a built sample site: no {ROUTES_FILE}")
        self.host = host
        self.port = port
        self.latency_ms = latency_ms
        self.burst_limit = burst_limit
        self.burst_window_s = burst_window_s
        self.huge_bytes = huge_bytes
        self.quiet = quiet
        self.hits: Counter[str] = Counter()
        self.status_counts: Counter[tuple[str, int]] = Counter()
        self.requests: list[RequestRecord] = []
        self._table = _RouteTable(self.site_dir)
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}
        self._failed_once: set[str] = set()
        self._huge: bytes | None = None
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # lifecycle -----------------------------------------------------------------------------

    def start(self) -> SampleServer:
        """Bind and serve in a background thread; returns self (base_url is now valid)."""
        if self._httpd is not None:
            return self
        handler = type("SampleHandler", (_Handler,), {"sample": self})
        httpd = ThreadingHTTPServer((self.host, self.port), handler)
        httpd.daemon_threads = True
        self.port = httpd.server_address[1]
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"sample-server-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> SampleServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """`http://host:port` of the running server (no trailing slash)."""
        return f"http://{self.host}:{self.port}"

    def url(self, path: str) -> str:
        """Absolute URL of a site path on this server."""
        return self.base_url + path

    # test helpers ----------------------------------------------------------------------------

    def reset_counters(self) -> None:
        """Forget hits, statuses and request records (not the one-off failure state)."""
        with self._lock:
            self.hits.clear()
            self.status_counts.clear()
            self.requests.clear()

    def file_for(self, path: str) -> Path:
        """The file on disk that backs a site path; FileNotFoundError if there is none."""
        self._table.refresh()
        route = self._table.routes.get(path)
        if route and "file" in route:
            return self.site_dir / route["file"]
        candidate = self._static_file(path)
        if candidate is None:
            raise FileNotFoundError(f"no file serves {path}")
        return candidate

    def mutate(self, path: str, old: str, new: str) -> Path:
        """Edit the page at `path` in place (first `old` → `new`), as an author's edit would.

        The next request for that page sees a new ETag and Last-Modified; no other page
        changes. Returns the edited file.
        """
        target = self.file_for(path)
        text = target.read_text(encoding="utf-8")
        if old not in text:
            raise ValueError(f"{old!r} not found in {path}")
        target.write_text(text.replace(old, new, 1), encoding="utf-8")
        return target

    # request handling ------------------------------------------------------------------------

    def _record(self, method: str, path: str, query: str, status: int, client: str) -> None:
        with self._lock:
            self.status_counts[(path, status)] += 1
            self.requests.append(RequestRecord(method, path, query, status, client))

    def _allow(self, client: str) -> bool:
        """Token bucket per client: `burst_limit` tokens, refilled over `burst_window_s`."""
        if self.burst_limit is None:
            return True
        capacity = float(self.burst_limit)
        rate = capacity / self.burst_window_s
        with self._lock:
            now = time.monotonic()
            tokens, last = self._buckets.get(client, (capacity, now))
            tokens = min(capacity, tokens + (now - last) * rate)
            allowed = tokens >= 1
            self._buckets[client] = (tokens - 1 if allowed else tokens, now)
            return allowed

    def _first_time(self, path: str) -> bool:
        with self._lock:
            if path in self._failed_once:
                return False
            self._failed_once.add(path)
            return True

    def _static_file(self, path: str) -> Path | None:
        relative = posixpath.normpath(path).lstrip("/")
        if relative.startswith("..") or relative.startswith("_"):
            return None
        candidate = self.site_dir / relative if relative not in ("", ".") else self.site_dir
        if path.endswith("/"):
            candidate = candidate / "index.html"
        return candidate if candidate.is_file() else None

    def _huge_body(self) -> bytes:
        with self._lock:
            if self._huge is None:
                head = (
                    b'<!DOCTYPE html><html><head><meta charset="utf-8"><title>Every log line '
                    b"we ever wrote</title></head><body><article><h1>Every log line</h1>\n"
                )
                tail = b"</article></body></html>\n"
                line = b"<p>refresh model=all-MiniLM-L6-v2@1 stale=0 embedded=0 deleted=0</p>\n"
                room = max(0, self.huge_bytes - len(head) - len(tail))
                filler = line * (room // len(line))
                self._huge = head + filler + b" " * (room - len(filler)) + tail
            return self._huge

    def _rewrite(self, path: str, content_type: str, body: bytes) -> bytes:
        textual = content_type.startswith("text/") or any(
            kind in content_type for kind in ("xml", "json")
        )
        if textual and not path.startswith("/git/"):
            return body.replace(PLACEHOLDER_ORIGIN.encode(), self.base_url.encode())
        return body

    def _redirect(self, location: str, status: int) -> Response:
        target = self.base_url + location if location.startswith("/") else location
        return _message(status, f'Moved to <a href="{target}">{target}</a>', Location=target)

    def _description(self) -> Response:
        """Who this demo author is and where their sources are, for the platform to record: the
        site's own `_description.json` when it has one (a second author), else the sample's."""
        from sample_author.content import AUTHOR
        from sample_author.links import PREFIXES, SOURCE_PATHS

        author, paths, prefixes = AUTHOR.name, SOURCE_PATHS, PREFIXES
        described = self.site_dir / "_description.json"
        if described.is_file():
            own = json.loads(described.read_text("utf-8"))
            author, paths, prefixes = own["author"], own["source_paths"], own["prefixes"]
        base = self.base_url.rstrip("/")
        body = json.dumps(
            {
                "author": author,
                "links": {p: [base + path for path in paths[p]] for p in paths},
                "platform_prefixes": {base + prefix: p for prefix, p in prefixes.items()},
            }
        ).encode()
        return Response(200, {"Content-Type": "application/json"}, body)

    def respond(self, method: str, path: str, query: str, headers: Any) -> Response:
        """The response for one request (rate limiting and latency are applied by the caller)."""
        if path.startswith("/_") or ".." in path.split("/"):
            return _message(404, "Not found")
        if path == DESCRIPTION_PATH:
            return self._description()
        self._table.refresh()
        redirect = self._table.redirects.get(path)
        if redirect is not None:
            return self._redirect(redirect["location"], int(redirect["status"]))
        route = self._table.routes.get(path)
        mtime = BUILD_TIME.timestamp()
        if route is None:
            static = self._static_file(path)
            if static is None:
                slashed = path + "/"
                if not path.endswith("/") and (
                    slashed in self._table.routes or self._static_file(slashed) is not None
                ):
                    return self._redirect(slashed + (f"?{query}" if query else ""), 301)
                return _message(404, "Not found")
            route = {"type": _SUFFIX_TYPES.get(static.suffix, "application/octet-stream")}
            source: Path | None = static
        else:
            source = self.site_dir / route["file"] if "file" in route else None
        fail = route.get("fail_first")
        if fail and self._first_time(path):
            return _message(
                int(fail["status"]),
                "Please try again shortly.",
                **{"Retry-After": str(fail.get("retry_after", 1))},
            )
        content_type = route["type"]
        if route.get("generate") == "huge":
            body = self._huge_body()
        elif source is not None:
            try:
                body = source.read_bytes()
                mtime = source.stat().st_mtime
            except FileNotFoundError:
                return _message(404, "Not found")
        else:
            return _message(404, "Not found")
        if "paginate" in route:
            try:
                body = self._paginate(body, query, route["paginate"])
            except ValueError as exc:
                return _message(400, str(exc))
        body = self._rewrite(path, content_type, body)
        status = int(route.get("status", 200))
        response = Response(status, {"Content-Type": content_type}, body)
        if status != 200:
            return response
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        response.headers["ETag"] = etag
        response.headers["Last-Modified"] = formatdate(int(mtime), usegmt=True)
        response.headers["Cache-Control"] = "no-cache"
        if self._not_modified(headers, etag, int(mtime)):
            return Response(
                304,
                {
                    "ETag": etag,
                    "Last-Modified": response.headers["Last-Modified"],
                    "Cache-Control": "no-cache",
                },
            )
        return response

    @staticmethod
    def _not_modified(headers: Any, etag: str, mtime: int) -> bool:
        if_none_match = headers.get("If-None-Match")
        if if_none_match is not None:
            return _etag_matches(if_none_match, etag)
        since = headers.get("If-Modified-Since")
        if since:
            try:
                return mtime <= int(parsedate_to_datetime(since).timestamp())
            except (TypeError, ValueError):
                return False
        return False

    @staticmethod
    def _paginate(body: bytes, query: str, options: dict[str, int]) -> bytes:
        params = parse_qs(query)
        try:
            offset = int(params.get("offset", ["0"])[0])
            limit = int(params.get("limit", [str(options.get("default_limit", 12))])[0])
        except ValueError as exc:
            raise ValueError("offset and limit must be integers") from exc
        if offset < 0 or limit < 1:
            raise ValueError("offset must be >= 0 and limit >= 1")
        limit = min(limit, options.get("max", 50))
        entries = json.loads(body)
        return (
            json.dumps(entries[offset : offset + limit], indent=1, ensure_ascii=False) + "\n"
        ).encode("utf-8")

    def handle(self, request: BaseHTTPRequestHandler, *, head: bool) -> None:
        """Serve one GET or HEAD request on `request`."""
        split = urlsplit(request.path)
        path = unquote(split.path) or "/"
        client = request.client_address[0]
        with self._lock:
            self.hits[path] += 1
        if path != DESCRIPTION_PATH and not self._allow(client):  # metadata, not crawl traffic
            response = _message(429, "Too many requests", **{"Retry-After": "1"})
        else:
            if self.latency_ms:
                time.sleep(self.latency_ms / 1000)
            response = self.respond(request.command, path, split.query, request.headers)
        self._record(request.command, path, split.query, response.status, client)
        _send(request, response, head=head)


def _send(request: BaseHTTPRequestHandler, response: Response, *, head: bool) -> None:
    try:
        request.send_response(response.status)
        for name, value in response.headers.items():
            request.send_header(name, value)
        if response.status != 304:
            request.send_header("Content-Length", str(len(response.body)))
        request.end_headers()
        if head or response.status == 304:
            return
        view = memoryview(response.body)
        for start in range(0, len(view), 256 * 1024):
            request.wfile.write(view[start : start + 256 * 1024])
    except (BrokenPipeError, ConnectionResetError):
        request.close_connection = True


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "SampleAuthor/1.0"
    sys_version = ""
    sample: SampleServer

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without this, Nagle's algorithm and
        # delayed ACKs add ~40 ms to every keep-alive response.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        self.sample.handle(self, head=False)

    def do_HEAD(self) -> None:
        self.sample.handle(self, head=True)

    def do_POST(self) -> None:
        self.close_connection = True
        _send(
            self,
            _message(405, "Method not allowed", Allow="GET, HEAD", Connection="close"),
            head=False,
        )

    def log_message(self, format: str, *args: Any) -> None:
        if not self.sample.quiet:
            super().log_message(format, *args)


def serve(
    site_dir: Path | None = None,
    port: int = 8000,
    latency_ms: float = 0,
    *,
    host: str = "127.0.0.1",
    burst_limit: int | None = DEFAULT_BURST_LIMIT,
    extra_pages: int = 0,
    quiet: bool = False,
) -> None:
    """Serve the sample site until interrupted, building it first if `site_dir` has none.

    With no `site_dir` the site is built into a fresh temporary directory. Prints the base URL,
    the entry URLs per platform and the git repository paths.
    """
    from sample_author.manifest import load_manifest
    from sample_author.site import build_site

    directory = Path(site_dir) if site_dir else Path(tempfile.mkdtemp(prefix="sample-author-"))
    if not (directory / ROUTES_FILE).exists():
        build_site(directory, extra_pages=extra_pages)
    manifest = load_manifest(directory)
    with SampleServer(
        directory, host=host, port=port, latency_ms=latency_ms, burst_limit=burst_limit, quiet=quiet
    ) as server:
        print(f"Serving {manifest.author}'s sample site from {directory} at {server.base_url}")
        for platform, urls in manifest.entry_urls(server.base_url).items():
            print(f"  {platform:<9} {' '.join(urls)}")
        for name, path in manifest.repo_dirs().items():
            print(f"  git       {name}: {path}")
        print("Press Ctrl+C to stop.", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


def main(argv: list[str] | None = None) -> int:
    """Command line: `python -m sample_author.server [--site-dir DIR] [--port N] ...`."""
    parser = argparse.ArgumentParser(
        prog="python -m sample_author.server", description="Serve the bundled sample author's site."
    )
    parser.add_argument(
        "--site-dir",
        type=Path,
        default=None,
        help="built site (built here if empty; a temp dir if omitted)",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--latency-ms", type=float, default=0)
    parser.add_argument(
        "--burst-limit",
        type=int,
        default=DEFAULT_BURST_LIMIT,
        help="requests per second per client before 429; 0 disables",
    )
    parser.add_argument("--extra-pages", type=int, default=0)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    serve(
        args.site_dir,
        args.port,
        args.latency_ms,
        host=args.host,
        burst_limit=args.burst_limit or None,
        extra_pages=args.extra_pages,
        quiet=args.quiet,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
