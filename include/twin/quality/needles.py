"""Texts a regular expression cannot match without: a scan is skipped where none of them occurs.

`needles(pattern)` reads the pattern's parse tree (the standard library's own parser) for literal
runs every match must contain: a run of literals in the pattern's main sequence or in a group
of it, or one run per branch of an alternation there. A match of the pattern holds at least one
of the needles, so a text holding none of them has no match and need not be searched. Patterns
that ignore case get no needles (a literal then stands for several characters).

`NeedlePattern` pairs a compiled pattern with its needles: `search` and `finditer` check them
(a substring test, far cheaper than the scan) first.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from re import _constants as sre_constants  # type: ignore[attr-defined]
from re import _parser as sre_parser  # type: ignore[attr-defined]


def needles(pattern: re.Pattern[str]) -> tuple[str, ...] | None:
    """Texts at least one of which every match of `pattern` contains; None when none are known."""
    if pattern.flags & re.IGNORECASE:
        return None
    return _required(sre_parser.parse(pattern.pattern, pattern.flags))


def _required(items: sre_parser.SubPattern) -> tuple[str, ...] | None:
    """The best needles of a sequence: the one with the longest shortest needle."""
    options: list[tuple[str, ...]] = []
    run = ""
    for op, arg in items:
        if op is sre_constants.LITERAL:
            run += chr(arg)
            continue
        if run:
            options.append((run,))
            run = ""
        if op is sre_constants.BRANCH:
            branches = [_required(branch) for branch in arg[1]]
            if all(b is not None for b in branches):
                options.append(tuple(n for b in branches if b for n in b))
        elif op is sre_constants.SUBPATTERN:
            _group, add_flags, _del_flags, body = arg
            if not add_flags & re.IGNORECASE and (inner := _required(body)) is not None:
                options.append(inner)
    if run:
        options.append((run,))
    if not options:
        return None
    return max(options, key=lambda found: min(len(n) for n in found))


@dataclass(frozen=True)
class NeedlePattern:
    """A compiled pattern searched only in texts holding one of its needles."""

    pattern: re.Pattern[str]
    needles: tuple[str, ...] | None = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "needles", needles(self.pattern))

    def may_match(self, text: str) -> bool:
        """False only where the pattern cannot match `text`."""
        return self.needles is None or any(n in text for n in self.needles)

    def search(self, text: str) -> re.Match[str] | None:
        return self.pattern.search(text) if self.may_match(text) else None

    def finditer(self, text: str) -> Iterator[re.Match[str]]:
        return self.pattern.finditer(text) if self.may_match(text) else iter(())
