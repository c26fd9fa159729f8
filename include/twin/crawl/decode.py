"""Bytes to text for fetched bodies, NUL-free text for documents, and the media-type helpers of
Content-Type values."""

from __future__ import annotations

import codecs
import re
from typing import Any

import charset_normalizer

# Labels that browsers decode as windows-1252 (WHATWG Encoding); cp1252 is their superset.
LATIN1_LABELS = frozenset({"iso-8859-1", "iso8859-1", "latin1", "latin-1", "l1", "us-ascii"})
META_CHARSET = re.compile(rb"""<meta[^>]{0,200}?charset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)""", re.I)
UNICODE_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# Wide encodings are never guessed without a BOM: short Latin text looks like UTF-16 otherwise.
NO_GUESS = ["utf_16", "utf_16_be", "utf_16_le", "utf_32", "utf_32_be", "utf_32_le", "utf_7"]


def decode_body(data: bytes, content_type: str) -> str:
    """The body as text; never raises.

    Tried in order: a byte-order mark, UTF-8 (bytes that are valid UTF-8 and not ASCII are almost
    never anything else, while a wrong `charset=iso-8859-1` is common), the charset of the
    Content-Type header, a `<meta charset>`, windows-1252 for mostly-Latin text, a guess by
    charset_normalizer, and finally windows-1252 with replacement characters.
    """
    for bom, encoding in UNICODE_BOMS:
        if data.startswith(bom):
            return data.decode(encoding, errors="replace")
    labels = ["utf-8", charset_of(content_type)]
    meta = META_CHARSET.search(data[:4096])
    if meta:
        labels.append(meta.group(1).decode("ascii", errors="ignore"))
    for label in labels:
        decoded = _decode_strict(data, label)
        if decoded is not None:
            return decoded
    western = _decode_strict(data, "cp1252")
    if western is not None and _mostly_ascii_letters(western):
        return western
    guess = charset_normalizer.from_bytes(data, cp_exclusion=NO_GUESS).best()
    if guess is not None:
        return str(guess)
    return western if western is not None else data.decode("cp1252", errors="replace")


def without_nul(value: Any) -> Any:
    """`value` with NUL characters removed from every string in it (in lists, tuples and dicts,
    keys included); other values as they are.

    No one writes a NUL in prose or code, but a broken export or API can carry one, and Postgres
    refuses text that holds it: left in, it would stop the warehouse load.
    """
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, list | tuple):
        return type(value)(without_nul(item) for item in value)
    if isinstance(value, dict):
        return {without_nul(key): without_nul(item) for key, item in value.items()}
    return value


def media_type(content_type: str) -> str:
    """The media type of a Content-Type value, lower case, without parameters."""
    return content_type.split(";", 1)[0].strip().lower()


def charset_of(content_type: str) -> str:
    """The charset parameter of a Content-Type value, or ""."""
    match = re.search(r"""charset\s*=\s*["']?([^"';\s]+)""", content_type, re.I)
    return match.group(1) if match else ""


def type_allowed(kind: str, types: tuple[str, ...]) -> bool:
    """Whether media type `kind` is one of `types` (`type/*` allows a family)."""
    for allowed in types:
        allowed = allowed.lower()
        if kind == allowed or (allowed.endswith("/*") and kind.startswith(allowed[:-1])):
            return True
    return False


def _decode_strict(data: bytes, label: str) -> str | None:
    """`data` decoded with the codec `label` names, or None when unknown or invalid."""
    if not label:
        return None
    label = label.strip().lower()
    candidates = ["cp1252", "latin-1"] if label in LATIN1_LABELS else [label]
    for encoding in candidates:
        try:
            return data.decode(encoding)
        except (LookupError, UnicodeDecodeError):
            continue
    return None


def _mostly_ascii_letters(text: str) -> bool:
    """Whether most letters are ASCII, as in Western European text (not Cyrillic or Greek)."""
    letters = [char for char in text if char.isalpha()]
    wide = sum(1 for char in letters if not char.isascii())
    return bool(letters) and wide <= 0.3 * len(letters)
