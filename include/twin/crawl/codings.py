"""Content codings (gzip, deflate, br) decoded from the raw bytes, with the decoded size bounded.

A decoder that expands a whole network chunk at once turns a few kilobytes of `gzip` or `br`
into gigabytes before any size check runs, and a chain (`Content-Encoding: gzip, gzip`) squares
the ratio. `BoundedBody` is fed the raw bytes as they arrive and never asks a decompressor for
more than the room left under the limit, so memory stays within the limit whatever the ratio.

One coding at most is accepted (identity aside): a chain has no use a crawler needs, and an
unknown coding cannot be read, so both are refused with the header's value in the reason.
"""

from __future__ import annotations

import zlib
from typing import Protocol

import brotli

DECODERS = ("gzip", "x-gzip", "deflate", "br")
ACCEPT_ENCODING = "gzip, deflate, br"
"""What the crawler sends as Accept-Encoding: exactly the codings `BoundedBody` reads."""


class BodyRefused(Exception):
    """The body cannot be taken: its coding is refused or broken, or it outgrows the limit."""


class _Decoder(Protocol):
    def decode(self, data: bytes, room: int) -> bytes:
        """Decoded bytes of `data` (and of what earlier calls left), at most `room` + 1."""

    def more(self, room: int) -> bytes:
        """Output still held back by the last `decode` for lack of room (b"" when none)."""


class BoundedBody:
    """Collects a body from its raw bytes, decoding its `Content-Encoding` on the way.

    Raises `BodyRefused` (at construction for a chained or unknown coding; from `feed` or
    `finish` when the stream is corrupt or the decoded body grows past `limit` bytes).
    """

    def __init__(self, content_encoding: str, limit: int) -> None:
        self.limit = limit
        self.coding = _single_coding(content_encoding)
        self._decoder = _decoder(self.coding)
        self._body = bytearray()
        self._raw = 0

    def feed(self, raw: bytes) -> None:
        """Take the next raw bytes of the body."""
        self._raw += len(raw)
        if self._raw > self.limit:
            raise BodyRefused(f"body larger than {self.limit} bytes")
        if self._decoder is None:
            self._take(raw)
            return
        self._take(self._decode(raw))
        while out := self._more():
            self._take(out)

    def finish(self) -> bytes:
        """The whole decoded body."""
        return bytes(self._body)

    def _room(self) -> int:
        return self.limit - len(self._body)

    def _decode(self, raw: bytes) -> bytes:
        assert self._decoder is not None
        try:
            return self._decoder.decode(raw, self._room())
        except (zlib.error, brotli.error) as exc:
            raise BodyRefused(f"cannot decode the {self.coding} body ({exc})") from None

    def _more(self) -> bytes:
        assert self._decoder is not None
        try:
            return self._decoder.more(self._room())
        except (zlib.error, brotli.error) as exc:
            raise BodyRefused(f"cannot decode the {self.coding} body ({exc})") from None

    def _take(self, data: bytes) -> None:
        self._body += data
        if len(self._body) > self.limit:
            where = f" once decoded (Content-Encoding {self.coding})" if self.coding else ""
            raise BodyRefused(f"body larger than {self.limit} bytes{where}")


def _single_coding(header: str) -> str:
    """The one content coding of a Content-Encoding value ("" for none or identity)."""
    codings = [c.strip().lower() for c in header.split(",")]
    codings = [c for c in codings if c and c != "identity"]
    if len(codings) > 1:
        raise BodyRefused(
            f"chained content codings refused (Content-Encoding {header.strip()!r}): "
            "one coding at most is accepted"
        )
    if codings and codings[0] not in DECODERS:
        raise BodyRefused(f"unsupported content coding {codings[0]!r} (Content-Encoding)")
    return codings[0] if codings else ""


def _decoder(coding: str) -> _Decoder | None:
    if coding in ("gzip", "x-gzip"):
        return _Inflate(16 + zlib.MAX_WBITS)
    if coding == "deflate":
        return _Inflate(zlib.MAX_WBITS, raw_fallback=True)
    if coding == "br":
        return _Brotli()
    return None


class _Inflate:
    """gzip or deflate through zlib. One gzip member is read and any bytes after it ignored (as
    httpx does); `deflate` is zlib-wrapped as the standard says, else raw deflate, as some
    servers send it."""

    def __init__(self, wbits: int, *, raw_fallback: bool = False) -> None:
        self._inflate = zlib.decompressobj(wbits)
        self._raw_fallback = raw_fallback

    def decode(self, data: bytes, room: int) -> bytes:
        if self._raw_fallback:
            self._raw_fallback = False
            try:
                return self._inflate.decompress(data, room + 1)
            except zlib.error:
                self._inflate = zlib.decompressobj(-zlib.MAX_WBITS)
        return self._inflate.decompress(data, room + 1)

    def more(self, room: int) -> bytes:
        tail = self._inflate.unconsumed_tail
        return self._inflate.decompress(tail, room + 1) if tail else b""


class _Brotli:
    """`br`, through brotli's incremental decompressor with an output limit per call."""

    def __init__(self) -> None:
        self._decompress = brotli.Decompressor()

    def decode(self, data: bytes, room: int) -> bytes:
        return self._decompress.process(data, output_buffer_limit=room + 1)

    def more(self, room: int) -> bytes:
        if self._decompress.can_accept_more_data():
            return b""
        return self._decompress.process(b"", output_buffer_limit=room + 1)
