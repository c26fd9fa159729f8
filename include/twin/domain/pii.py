"""Personal data and secrets: the one definition of the patterns the warehouse redacts.

Each `PiiRule` is a regular expression valid both as a PostgreSQL ARE (the dbt redaction runs in
the warehouse) and as a Python `re` pattern, with its placeholder. `dbt/macros/pii.sql` is
generated from this module (`python -m twin.quality.pii_macros`); a test keeps the two equal.
Order matters: private keys and tokens first (a key holds digit runs that look like a phone
number), then named secrets, e-mails, IBANs, phones, addresses and names in signatures.

The marts quality gate does not use these patterns: it checks with an independent detector
(`twin.quality.pii_detect`: phonenumbers, detect-secrets, python-stdnum, an e-mail validator).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

PLACEHOLDERS = ("[EMAIL]", "[PHONE]", "[ADDRESS]", "[SECRET]", "[IBAN]", "[NAME]")


@dataclass(frozen=True)
class PiiRule:
    """One redaction: `pattern` (ARE and Python `re`), what replaces a match (`\\1` keeps the
    first group), and whether it ignores case."""

    name: str
    kind: str
    pattern: str
    replacement: str
    ignore_case: bool = False


# `api_key = "…"`, `password: '…'`, `OPENAI_API_KEY=…`: the name (and quotes) are kept.
_SECRET_NAME = (
    r"(?<![A-Za-z0-9])(?:api[_-]?key|api[_-]?secret|secret[_-]?key|secret|access[_-]?key"
    r"|access[_-]?token|auth[_-]?token|bearer[_-]?token|client[_-]?secret|private[_-]?key"
    r"(?:[_-]?id)?|password|passwd|pwd|token)[\"']?[ \t]*[:=][ \t]*"
)
# a capitalised name word: "Maria", "O'Neill", "Jean-Luc", "Sjöberg"
_NAME_WORD = r"[A-ZÅÄÖÆØ](?:[a-zåäöæøéü]+|['’-][A-ZÅÄÖÆØ]?[a-zåäöæøéü]+)+"
_TLD = r"(?:com|org|net|io|dev|ai|co|me|info|eu|uk|se|no|dk|fi|de|nl|fr|es|it|pl|ch|at|us)"
_BRACKET_AT = r"[ \t]*[\[({<][ \t]*(?:at|AT)[ \t]*[\])}>][ \t]*"
_SPELLED_AT = r"[ \t]+(?:at|AT)[ \t]+"
_SPELLED_DOT = r"[ \t]+(?:dot|DOT)[ \t]+"
_DOT = r"(?:[ \t]*[\[({<][ \t]*(?:dot|DOT)[ \t]*[\])}>][ \t]*|[ \t]+(?:dot|DOT)[ \t]+|\.)"

RULES: tuple[PiiRule, ...] = (
    PiiRule(
        "private_key",
        "secret",
        r"-----BEGIN.{0,40}?PRIVATE KEY-----.*?-----END[A-Z ]{0,40}PRIVATE KEY-----",
        "[SECRET]",
    ),
    PiiRule(
        "token",
        "secret",
        r"(?<![A-Za-z0-9_-])sk-[A-Za-z0-9_-]{16,}"
        r"|(?<![A-Za-z0-9_])gh[pousr]_[A-Za-z0-9]{30,}"
        r"|(?<![A-Za-z0-9_])github_pat_[A-Za-z0-9_]{30,}"
        r"|(?<![A-Za-z0-9])(?:AKIA|ASIA)[0-9A-Z]{16}(?![0-9A-Z])"
        r"|(?<![A-Za-z0-9])xox[abprs]-[A-Za-z0-9-]{10,}"
        r"|(?<![A-Za-z0-9])AIza[0-9A-Za-z_-]{35}"
        r"|(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"
        r"|(?<![A-Za-z0-9])glpat-[A-Za-z0-9_-]{20,}"
        r"|(?<![A-Za-z0-9])(?:sk|rk)_live_[A-Za-z0-9]{20,}"
        r"|(?<![A-Za-z0-9])pypi-[A-Za-z0-9_-]{50,}"
        r"|(?<![A-Za-z0-9])ya29\.[A-Za-z0-9_-]{20,}",
        "[SECRET]",
    ),
    PiiRule(
        "quoted_secret",
        "secret",
        rf"({_SECRET_NAME}[\"'])[^\"'\s\[][^\"'\s]{{7,}}([\"'])",
        r"\1[SECRET]\2",
        ignore_case=True,
    ),
    PiiRule(
        "bare_secret",
        "secret",
        rf"({_SECRET_NAME})(?=[A-Za-z_/+=-]*[0-9])[A-Za-z0-9_/+=-]{{16,}}"
        r"|(bearer[ \t]+)[A-Za-z0-9._~+/-]{20,}=*",
        r"\1\2[SECRET]",
        ignore_case=True,
    ),
    PiiRule(
        "url_credentials",
        "secret",
        r"(://[A-Za-z0-9._%-]+:)[^@/\s]{3,}(@)",
        r"\1[SECRET]\2",
    ),
    PiiRule(
        "email",
        "email",
        r"(?<![A-Za-z0-9._%+-])(?!git@)[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*"
        r"\.[A-Za-z]{2,}(?![A-Za-z0-9-])",
        "[EMAIL]",
    ),
    PiiRule(
        "obfuscated_email",
        "email",
        # "name [at] domain.com", "name (at) domain (dot) se"; with a plain " at " the dot must be
        # spelled out too ("name at domain dot com"), or "look at github.com" would be an address
        rf"(?<![A-Za-z0-9._%+-])[A-Za-z0-9][A-Za-z0-9._%+-]*{_BRACKET_AT}[A-Za-z0-9-]+"
        rf"(?:{_DOT}[A-Za-z0-9-]+)*?{_DOT}{_TLD}(?![A-Za-z0-9])"
        rf"|(?<![A-Za-z0-9._%+-])[A-Za-z0-9][A-Za-z0-9._%+-]*{_SPELLED_AT}[A-Za-z0-9-]+"
        rf"(?:{_SPELLED_DOT}[A-Za-z0-9-]+)*?{_SPELLED_DOT}{_TLD}(?![A-Za-z0-9])",
        "[EMAIL]",
    ),
    PiiRule(
        "iban",
        "iban",
        r"(?<![A-Za-z0-9])[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?"
        r"(?![A-Za-z0-9])",
        "[IBAN]",
    ),
    PiiRule(
        "phone",
        "phone",
        # international: +CC or 00CC, then groups (a trunk "(0)" or area code in brackets allowed)
        r"(?<![0-9A-Za-z+])(?:\+|00)[1-9][0-9]{0,2}"
        r"(?:[ .-]?(?:\(0\)|\([0-9]{1,4}\)|[0-9]{1,5})){2,6}(?![0-9])"
        # North American: (555) 123-4567, 555-123-4567, 555.123.4567, 555 123 4567
        r"|(?<![0-9A-Za-z])(?:\([0-9]{3}\)[ ]?|[0-9]{3}[ .-])[0-9]{3}[ .-][0-9]{4}(?![0-9])"
        # national with a trunk 0: 070-123 45 67, 08-123 456 78, (020) 7946 0958, 030 1234567
        r"|(?<![0-9A-Za-z+.,/-])(?:\(0[0-9]{1,4}\)|0[0-9]{1,4})[ -]?[0-9]{2,4}"
        r"(?:[ -]?[0-9]{2,4}){1,3}(?![0-9])",
        "[PHONE]",
    ),
    PiiRule(
        "address",
        "address",
        r"(?<![0-9A-Za-z])[0-9]{1,5}[A-Z]?(?: [A-Z][a-z]+){1,3} (?:Street|St|Avenue|Ave|Road|Rd"
        r"|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|Terrace|Square|Sq)(?![A-Za-z])\.?"
        r"|(?<![A-Za-zÅÄÖåäöÆØæø])[A-ZÅÄÖÆØ][a-zåäöæøéü]+(?:gatan|vägen|gränd|torget|stigen"
        r"|backen|allén|gata|väg|gade|vej|veien|gaten|straße|strasse|weg|platz) [0-9]{1,4}"
        r"[A-Za-z]?(?![0-9A-Za-z])",
        "[ADDRESS]",
    ),
    PiiRule(
        "signature_name",
        "name",
        # a sign-off line, then a line that is only a personal name: the name goes
        r"((?:^|\n)[ \t]*(?:--|—|Best|Best regards|Kind regards|Warm regards|Regards|Cheers"
        r"|Thanks|Thank you|Many thanks|Sincerely|Yours|All the best|Med vänliga hälsningar"
        r"|Vänliga hälsningar|Mit freundlichen Grüßen|Cordialement)[ \t]*,?[ \t]*\n[ \t]*)"
        rf"{_NAME_WORD}(?: [A-ZÅÄÖÆØ]\.?)?(?: {_NAME_WORD}){{1,2}}"
        r"(?=[ \t]*(?:\n|$))",
        r"\1[NAME]",
    ),
)


def rule(name: str) -> PiiRule:
    """The rule called `name` (KeyError if none)."""
    for r in RULES:
        if r.name == name:
            return r
    raise KeyError(name)


# Card numbers, which the warehouse's rules leave alone (in prose a long digit run is more often
# an id), are redacted from generated text when their Luhn check digit holds.
_CARD = re.compile(r"\b(?:\d[ -]?){13,19}\b")


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


@lru_cache(maxsize=1)
def _compiled() -> list[tuple[re.Pattern[str], str]]:
    return [
        # PostgreSQL's `.` matches newlines, as DOTALL makes Python's do
        (re.compile(r.pattern, re.DOTALL | (re.IGNORECASE if r.ignore_case else 0)), r.replacement)
        for r in RULES
    ]


def redact(text: str) -> tuple[str, int]:
    """`text` with every rule applied (`[EMAIL]`, `[PHONE]`, `[IBAN]`, `[SECRET]`, ...) and
    Luhn-valid card numbers replaced by `[CARD]`: what the platform does to text it did not get
    from the warehouse (answers, users' questions) before showing or storing it. Returns the text
    and how many replacements were made; redacting twice changes nothing more."""
    count = 0
    for pattern, replacement in _compiled():
        text, n = pattern.subn(replacement, text)
        count += n

    def card(match: re.Match[str]) -> str:
        nonlocal count
        if not _luhn(re.sub(r"\D", "", match.group(0))):
            return match.group(0)
        count += 1
        return "[CARD]"

    return _CARD.sub(card, text), count
