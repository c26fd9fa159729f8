"""The marts gate's detector skips texts that cannot hold a secret or a phone number; what it
skips must never hide one. Each case is written at the edge of what the skip allows."""

from __future__ import annotations

import base64
import json

import pytest

from twin.quality.needles import needles
from twin.quality.pii_detect import SECRET_PLUGINS, find_pii


def _jwt() -> str:
    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    header, payload = part({"alg": "HS256", "typ": "JWT"}), part({"sub": "1234567890"})
    return f"{header}.{payload}.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"


# One invented secret per detect-secrets plugin the detector runs (formats from each plugin's
# own patterns; none is a real credential).
VENDOR_SECRETS = {
    "AWSKeyDetector": "key id AKIAZ7QXWVUTSRQPONML here",
    "ArtifactoryDetector": "AKCp8abcdefghijkl",
    "AzureStorageKeyDetector": "AccountKey=" + "a" * 86 + "==;",
    "BasicAuthDetector": "git clone https://deploy:hunter2secret@git.example.org/x.git",
    "DiscordBotTokenDetector": "MTk4NjIyNDgzNDcxOTI1MjQ4.Cl2FMQ.ZnCjm1XVW7vRze4b7Cq4se7kKWs",
    "GitHubTokenDetector": "ghp_A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8",
    "GitLabTokenDetector": "glpat-x1Y2z3A4b5C6d7E8f9G0",
    "JwtTokenDetector": "Authorization: Bearer " + _jwt(),
    "MailchimpDetector": "mc 0123456789abcdef0123456789abcdef-us12",
    "NpmDetector": "//registry.npmjs.org/:_authToken=npm_abcdefghijklmnopqrstuvwxyz0123456789",
    "OpenAIDetector": "sk-" + "A" * 20 + "T3BlbkFJ" + "B" * 20,
    "PrivateKeyDetector": "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n"
    "-----END RSA PRIVATE KEY-----",
    "PypiTokenDetector": "pypi-AgEIcHlwaS5vcmc" + "a" * 70,
    "SendGridDetector": "SG." + "a" * 22 + "." + "b" * 43,
    "SlackDetector": "xoxb-1234567890-abcdefghij",
    "SquareOAuthDetector": "sq0csp-" + "a" * 43,
    "StripeDetector": "sk_live_a1B2c3D4e5F6g7H8i9J0k1L2",
    "TelegramBotTokenDetector": "bot 123456789:" + "A" * 35,
    "TwilioKeyDetector": "AC" + "a1" * 16,
}


def test_every_plugin_has_a_case() -> None:
    assert set(VENDOR_SECRETS) == set(SECRET_PLUGINS)


@pytest.mark.parametrize("plugin", sorted(VENDOR_SECRETS))
def test_a_vendor_secret_inside_prose_is_found(plugin: str) -> None:
    text = f"Notes from the migration.\n{VENDOR_SECRETS[plugin]}\nThe rest went fine."
    assert any(f.detector.startswith("detect-secrets:") for f in find_pii(text)), plugin


@pytest.mark.parametrize(
    "text",
    [
        "Call +49 1644 now.",  # a two-digit country code and a four-digit number: the shortest
        "Call +43 (0) 1112 now.",
        "Ring +49 -- 16 -- 44 after lunch.",  # four punctuation characters between digits
        "Text me at (212) 555-0142 if it breaks.",  # a national number: nine digits or more
    ],
)
def test_the_shortest_and_most_spaced_out_phone_numbers_are_found(text: str) -> None:
    assert [f.kind for f in find_pii(text)] == ["phone"]


def test_phone_numbers_are_found_on_any_line_at_their_place_in_the_text() -> None:
    text = "\n".join(
        ["Release 2.4 shipped 1,200 fixes.", "", "Call +46 70 123 45 67 today.", "(212) 555-0142"]
    )
    found = [text[f.start : f.end] for f in find_pii(text) if f.kind == "phone"]
    assert found == ["+46 70 123 45 67", "(212) 555-0142"]


def test_a_number_broken_over_two_lines_is_no_phone_number() -> None:
    assert [f.kind for f in find_pii("Ring +46 70 123\n45 67 today.")] == []


@pytest.mark.parametrize(
    "name",
    [
        "credent\u0130al",  # the dotted capital I: "i" to case-insensitive matching
        "credent\u0131al",  # the dotless small i
        "\u017fecret",  # the long s: "s" to case-insensitive matching
        "\u212aey",  # the Kelvin sign: "k"
        "API_KEY",
    ],
)
def test_a_secret_name_in_any_case_insensitive_spelling_is_read(name: str) -> None:
    text = f"config: {name} = 'q8Zr2Lm5Tx9Kp3Vw'"
    found = [(f.detector, text[f.start : f.end]) for f in find_pii(text)]
    assert found == [("assigned-high-entropy", "q8Zr2Lm5Tx9Kp3Vw")]


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        (r"(?:\s|=|^)AKC[a-z]{10,}", ("AKC",)),
        (r"\bAIza[0-9]{35}\b|\bya29\.[0-9]{20,}", ("AIza", "ya29.")),
        (r"(ghp|gho)_[A-Za-z0-9_]{36}", ("gh",)),  # the parser keeps the branches' common "gh"
        (r"(?:A3T[A-Z0-9]|ABIA|AKIA)[0-9A-Z]{16}", ("3T", "BIA", "KIA")),  # longer than "A"
        (r"(?i)xox(?:a|b)-\d+", None),  # case-insensitive: no literal is one character
        (r"\d{8,10}:?[0-9A-Z]{35}", None),  # nothing every match holds
        (r"(?:ab|\d)+cd", ("cd",)),  # a repeated group is not required; what follows is
    ],
)
def test_needles_are_texts_every_match_holds(pattern: str, expected: tuple | None) -> None:
    import re

    assert needles(re.compile(pattern)) == expected


def test_a_value_assigned_to_a_secret_name_is_found_by_its_value() -> None:
    text = "db.password_main = 'q8Zr2Lm5Tx9Kp3Vw'\nservice_token_key: Yb7Nc4Rt1Qs8Uv2W"
    found = [(f.detector, text[f.start : f.end]) for f in find_pii(text)]
    assert found == [
        ("assigned-high-entropy", "q8Zr2Lm5Tx9Kp3Vw"),
        ("assigned-high-entropy", "Yb7Nc4Rt1Qs8Uv2W"),
    ]


# Addresses at the edge of the e-mail scans' skips: each one holds just what its pattern needs
# (an @, a bracketed "at", a spelled-out " dot ").
@pytest.mark.parametrize(
    "text",
    [
        "Write to jane.doe@example.org.",
        "Write to jane.doe [at] example [dot] org",
        "Write to jane.doe(AT)example.org",
        "Write to jane.doe <at> example.org",
        "Write to jane.doe at example dot org",
        "Write to jane.doe AT example\tDOT\torg",
    ],
)
def test_every_e_mail_form_is_found(text: str) -> None:
    assert [f.kind for f in find_pii(text)] == ["email"]


@pytest.mark.parametrize(
    "text", ["Look at github.com for it.", "git@github.com:me/repo.git", "at dot at dot"]
)
def test_text_that_only_looks_like_an_address_is_not_an_e_mail(text: str) -> None:
    assert [f.kind for f in find_pii(text)] == []
