"""An independent PII detector: the marts gate's check, built on maintained libraries.

It shares no pattern with the redactor (`twin.domain.pii`), so a format the redactor misses is
not missed here for the same reason: phone numbers are found and validated by `phonenumbers`
(Google's libphonenumber metadata), IBANs by their check digits (`python-stdnum`), secrets by
`detect-secrets`' vendor plugins plus an entropy test on values assigned to secret-like names,
e-mail addresses (also written as "name at domain dot com") by `email-validator` after
de-obfuscation, and names by their place under a sign-off. Findings carry the kind and the
position only; the matched text is not logged or stored.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import version
from pathlib import Path

from twin.quality.needles import NeedlePattern

DATE_LIKE = re.compile(r"\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}")
PHONE_REGIONS = ("US", "GB", "SE", "DE", "FR", "NO", "DK", "FI", "NL", "AU", "JP")
# Every phone number `phones` keeps has six digits or more (an international number: a two-digit
# country code and a four-digit number, the shortest libphonenumber validates; a national one
# needs nine), and libphonenumber's matcher allows at most four punctuation characters between
# two of its digits and none of them a line break: a line without such a run of digits holds
# none, and is not matched eleven times over.
PHONE_DIGITS = re.compile(r"\d(?:\D{0,4}\d){5}")
SECRET_PLUGINS = (
    "AWSKeyDetector",
    "ArtifactoryDetector",
    "AzureStorageKeyDetector",
    "BasicAuthDetector",
    "DiscordBotTokenDetector",
    "GitHubTokenDetector",
    "GitLabTokenDetector",
    "JwtTokenDetector",
    "MailchimpDetector",
    "NpmDetector",
    "OpenAIDetector",
    "PrivateKeyDetector",
    "PypiTokenDetector",
    "SendGridDetector",
    "SlackDetector",
    "SquareOAuthDetector",
    "StripeDetector",
    "TelegramBotTokenDetector",
    "TwilioKeyDetector",
)
# The distributions whose versions decide what the detector finds, beside this module's code.
DETECTOR_LIBRARIES = ("phonenumbers", "detect-secrets", "python-stdnum", "email-validator")
PLACEHOLDER = re.compile(r"\[(?:EMAIL|PHONE|ADDRESS|SECRET|IBAN|NAME)\]")
# Google Cloud formats detect-secrets has no plugin for: API keys and OAuth access tokens.
GOOGLE_KEY = NeedlePattern(re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b|\bya29\.[0-9A-Za-z_-]{20,}"))
# A value (group 1) assigned to a name holding one of the words. The match starts at the word,
# not at the name's first character: the value is the same, and a leading `[A-Za-z0-9_.-]*`
# made every name be re-read once per character.
ASSIGNED = re.compile(
    r"(?i)(?:key|secret|token|passw(?:or)?d|pwd|credential)[A-Za-z0-9_.-]*"
    r"[\"']?\s*[:=]\s*[\"']?([^\s\"',;]{12,})"
)
# Words one of which `ASSIGNED` needs, as case-folded text holds them: case-insensitive matching
# also takes the dotted and dotless capital/small i of Turkish for "i", which case folding keeps
# apart, so those are read as "i" (and a combining dot above dropped) before the test.
ASSIGNED_WORDS = ("key", "secret", "token", "passw", "pwd", "credential")
TURKISH_I = str.maketrans({"\u0131": "i", "\u0307": None})
MIN_SECRET_ENTROPY = 3.0
KEY_BLOCK_END = re.compile(r"-----END[A-Z ]{0,40}PRIVATE KEY-----")
IBAN_CANDIDATE = re.compile(r"\b[A-Z]{2}[0-9]{2}(?:[ ]?[A-Z0-9]){11,30}\b")
OBFUSCATED_AT = re.compile(r"\s*[\[({<]\s*at\s*[\])}>]\s*|\s+at\s+", re.IGNORECASE)
OBFUSCATED_DOT = re.compile(r"\s*[\[({<]\s*dot\s*[\])}>]\s*|\s+dot\s+", re.IGNORECASE)
EMAIL_CANDIDATE = NeedlePattern(re.compile(r"[\w.%+-]+@[\w-]+(?:\.[\w-]+)+"))
_BRACKET_AT = r"\s*[\[({<]\s*at\s*[\])}>]\s*"
_BRACKET_DOT = r"(?:\s*[\[({<]\s*dot\s*[\])}>]\s*|\s+dot\s+|\.)"
# "name [at] domain [dot] com" (any dot); "name at domain dot com" (the dot spelled out too, or
# "look at github.com" would be an address)
BRACKETED_ADDRESS = re.compile(rf"[\w.%+-]+{_BRACKET_AT}[\w-]+(?:{_BRACKET_DOT}[\w-]+)+", re.I)
SPELLED_ADDRESS = re.compile(r"[\w.%+-]+\s+at\s+[\w-]+(?:\s+dot\s+[\w-]+)+", re.I)
# What each candidate pattern above cannot match without: their leading `[\w.%+-]+` is tried
# from every position of every word, so a text without these is spared the scans.
BRACKETED_AT = re.compile(r"[\[({<]\s*at\s*[\])}>]", re.I)
SPELLED_DOT = re.compile(r"\sdot\s", re.I)
SIGN_OFF = re.compile(
    r"^\s*(?:--|—|best|best regards|kind regards|warm regards|regards|cheers|thanks|thank you|"
    r"many thanks|sincerely|yours|all the best|med vänliga hälsningar|vänliga hälsningar|"
    r"mit freundlichen grüßen|cordialement)\s*,?\s*$",
    re.IGNORECASE,
)
NAME_LINE = re.compile(r"^\s*(\w[\w'’-]+(?:\s+\w\.)?(?:\s+\w[\w'’-]+){1,2})\s*$")


@dataclass(frozen=True)
class Finding:
    """One piece of personal data or a secret: its kind and where it is (no value)."""

    kind: str
    start: int
    end: int
    detector: str


def find_pii(text: str) -> list[Finding]:
    """Every PII finding in `text`, in order of position (overlaps between detectors kept)."""
    if not text:
        return []
    found = [
        *phones(text),
        *emails(text),
        *ibans(text),
        *secrets(text),
        *signature_names(text),
    ]
    return sorted(found, key=lambda f: (f.start, f.end, f.kind))


@lru_cache(maxsize=1)
def fingerprint() -> str:
    """Changes whenever what the detector finds could: this module's code, its libraries."""
    digest = hashlib.sha256(Path(__file__).read_bytes())
    for library in DETECTOR_LIBRARIES:
        digest.update(f"\n{library}=={version(library)}".encode())
    return digest.hexdigest()[:16]


def kinds(findings: Iterable[Finding]) -> dict[str, int]:
    """How many findings of each kind."""
    counts: dict[str, int] = {}
    for f in findings:
        counts[f.kind] = counts.get(f.kind, 0) + 1
    return dict(sorted(counts.items()))


# --- phones -----------------------------------------------------------------------------------


def phones(text: str) -> list[Finding]:
    """Valid phone numbers (international anywhere; national ones of the listed regions).

    libphonenumber's matcher is run on each line that can hold one (`PHONE_DIGITS`), not on the
    whole text: its candidates never span a line break, and a line's own ends look to it as
    the line break beside them does (neither a letter nor a symbol it refuses)."""
    spans: set[tuple[int, int]] = set()
    offset = 0
    for line in text.split("\n"):
        if PHONE_DIGITS.search(line):
            spans.update((offset + s, offset + e) for s, e in _phone_spans(line))
        offset += len(line) + 1
    return [Finding("phone", s, e, "phonenumbers") for s, e in sorted(spans)]


def _phone_spans(text: str) -> set[tuple[int, int]]:
    import phonenumbers

    spans: set[tuple[int, int]] = set()
    for region in PHONE_REGIONS:
        matcher = phonenumbers.PhoneNumberMatcher(text, region, phonenumbers.Leniency.VALID)
        for match in matcher:
            raw = match.raw_string
            digits = sum(c.isdigit() for c in raw)
            international = raw.lstrip("(").startswith(("+", "00"))
            if DATE_LIKE.fullmatch(raw.strip()) or (not international and digits < 9):
                continue
            spans.add((match.start, match.end))
    return spans


# --- e-mails ----------------------------------------------------------------------------------


def emails(text: str) -> list[Finding]:
    """Deliverable-looking e-mail addresses, also "name at domain dot com" and "[at]" forms."""
    from email_validator import EmailNotValidError, validate_email

    found = []
    for start, end, candidate in email_candidates(text):
        if candidate.lower().startswith("git@"):
            continue  # an SSH remote, not a mailbox
        try:
            validate_email(candidate, check_deliverability=False, test_environment=True)
        except EmailNotValidError:
            continue
        found.append(Finding("email", start, end, "email-validator"))
    return found


def email_candidates(text: str) -> list[tuple[int, int, str]]:
    """(start, end, address) of plain and de-obfuscated address candidates."""
    out = [(m.start(), m.end(), m.group(0).rstrip(".")) for m in EMAIL_CANDIDATE.finditer(text)]
    for pattern, required in ((BRACKETED_ADDRESS, BRACKETED_AT), (SPELLED_ADDRESS, SPELLED_DOT)):
        if not required.search(text):
            continue
        for m in pattern.finditer(text):
            address = OBFUSCATED_DOT.sub(".", OBFUSCATED_AT.sub("@", m.group(0), count=1))
            out.append((m.start(), m.end(), address))
    return out


# --- IBANs ------------------------------------------------------------------------------------


def ibans(text: str) -> list[Finding]:
    """IBANs whose country format and check digits are valid."""
    from stdnum import iban

    found = []
    for m in IBAN_CANDIDATE.finditer(text):
        candidate = m.group(0)
        # the longest valid prefix: a trailing word may have been swallowed by the candidate
        for cut in range(len(candidate), 14, -1):
            if iban.is_valid(candidate[:cut]):
                found.append(Finding("iban", m.start(), m.start() + cut, "python-stdnum"))
                break
    return found


# --- secrets ----------------------------------------------------------------------------------


def secrets(text: str) -> list[Finding]:
    """Vendor keys and tokens (detect-secrets), Google keys, private-key blocks, high-entropy
    values assigned to secret-like names."""
    from detect_secrets.plugins.high_entropy_strings import Base64HighEntropyString

    found = vendor_secrets(text)
    entropy = Base64HighEntropyString().calculate_shannon_entropy
    for m in GOOGLE_KEY.finditer(text):
        found.append(Finding("secret", m.start(), m.end(), "google-key-format"))
    folded = text.casefold().translate(TURKISH_I)
    assigned = ASSIGNED.finditer(text) if any(w in folded for w in ASSIGNED_WORDS) else ()
    for m in assigned:
        value = m.group(1)
        if PLACEHOLDER.search(value) or not re.search(r"[0-9]", value):
            continue
        if entropy(value) >= MIN_SECRET_ENTROPY:
            found.append(Finding("secret", m.start(1), m.end(1), "assigned-high-entropy"))
    return found


def vendor_secrets(text: str) -> list[Finding]:
    """What detect-secrets' vendor plugins flag, line by line (a private key to its block's end).

    Texts none of the plugins' patterns match anywhere are not scanned line by line: most prose
    holds nothing they look for, and the scan (with its settings) is most of the detector's time.
    """
    if not _may_hold_vendor_secret(text):
        return []
    from detect_secrets.core.scan import scan_line

    found = []
    offset = 0
    with _secret_settings():
        for line in text.splitlines(keepends=True):
            if not PLACEHOLDER.fullmatch(line.strip()):
                for secret in scan_line(line):
                    value = secret.secret_value or ""
                    if PLACEHOLDER.search(value):
                        continue
                    at = line.find(value) if value else -1
                    start = offset + (at if at >= 0 else 0)
                    end = start + (len(value) if at >= 0 else len(line))
                    if secret.type == "Private Key":
                        block_end = KEY_BLOCK_END.search(text, end)
                        end = block_end.end() if block_end else len(text)
                    found.append(Finding("secret", start, end, f"detect-secrets:{secret.type}"))
            offset += len(line)
    return found


@lru_cache(maxsize=1)
def _vendor_patterns() -> tuple[NeedlePattern, ...]:
    """The plugins' own patterns (`denylist`), to search a whole text at once: a line is
    flagged only where one of them matches it, and with `^` and `$` at every line boundary
    (MULTILINE) a match inside a line is a match inside the text. Each is searched only in
    texts holding its needles (`twin.quality.needles`)."""
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class

    plugins = {cls.__name__: cls for cls in get_mapping_from_secret_type_to_class().values()}
    return tuple(
        NeedlePattern(re.compile(pattern.pattern, pattern.flags | re.MULTILINE))
        for name in SECRET_PLUGINS
        for pattern in plugins[name]().denylist
    )


def _may_hold_vendor_secret(text: str) -> bool:
    """Whether any line of `text` can hold what the plugins flag."""
    return any(pattern.search(text) for pattern in _vendor_patterns())


@lru_cache(maxsize=1)
def _plugins() -> dict:
    return {"plugins_used": [{"name": name} for name in SECRET_PLUGINS]}


def _secret_settings():
    from detect_secrets.settings import transient_settings

    return transient_settings(_plugins())


# --- names in signatures ----------------------------------------------------------------------


def signature_names(text: str) -> list[Finding]:
    """A line holding only a capitalised personal name right under a sign-off line."""
    found = []
    lines = text.splitlines(keepends=True)
    offset = 0
    for i, line in enumerate(lines):
        if i and SIGN_OFF.match(lines[i - 1]):
            m = NAME_LINE.match(line.rstrip("\n"))
            words = m.group(1).split() if m else []
            if m and all(w[0].isupper() for w in words):
                found.append(Finding("name", offset + m.start(1), offset + m.end(1), "sign-off"))
        offset += len(line)
    return found
