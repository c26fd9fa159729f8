"""Generate `dbt/macros/pii.sql` from the PII rules of `twin.domain.pii` (one definition).

`python -m twin.quality.pii_macros` rewrites the file; `--check` exits 1 when it is stale. The
same SQL expressions serve the redaction evaluation (`twin.quality.pii_eval`), which therefore
measures exactly what dbt runs.
"""

from __future__ import annotations

import sys

from twin.domain.pii import PLACEHOLDERS, RULES, PiiRule
from twin.settings import DBT_PROJECT_DIR

MACROS_FILE = DBT_PROJECT_DIR / "macros" / "pii.sql"
HEADER = """{#-
  GENERATED from include/twin/domain/pii.py by `python -m twin.quality.pii_macros`: do not edit.
  PII redaction with Postgres regular expressions, one pattern macro per rule, used to redact
  (`redact_pii`) and to look for leftovers (`contains_pii`, macros/pii_guard.sql).
  The marts quality gate checks with an independent detector (twin.quality.pii_detect).
-#}
"""


def literal(text: str) -> str:
    """A standard SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def redact_sql(expr: str) -> str:
    """`expr` with every rule applied in order (nested `regexp_replace`)."""
    out = expr
    for rule in RULES:
        pattern, replacement = literal(rule.pattern), literal(rule.replacement)
        out = f"regexp_replace({out}, {pattern}, {replacement}, {flags(rule)})"
    return out


def flags(rule: PiiRule) -> str:
    return "'gi'" if rule.ignore_case else "'g'"


def contains_sql(expr: str) -> str:
    """True when `expr` still holds anything a rule matches."""
    tests = [f"{expr} {'~*' if r.ignore_case else '~'} {literal(r.pattern)}" for r in RULES]
    return "(" + " or ".join(tests) + ")"


def count_sql(expr: str) -> str:
    """How many placeholders `expr` holds."""
    names = "|".join(p.strip("[]") for p in PLACEHOLDERS)
    pattern = literal(r"\[(" + names + r")\]")
    return f"regexp_count({expr}, {pattern})"


def render() -> str:
    """The whole macros file."""
    parts = [HEADER]
    for rule in RULES:
        head = f"{{% macro pii_{rule.name}_pattern() -%}}"
        parts.append(f"{head}\n{literal(rule.pattern)}\n{{%- endmacro %}}\n")
    nested = "{{ expr }}"
    for rule in RULES:
        nested = (
            f"regexp_replace({nested}, {{{{ pii_{rule.name}_pattern() }}}}, "
            f"{literal(rule.replacement)}, {flags(rule)})"
        )
    parts.append(
        "{#- The text with every kind of PII replaced by its placeholder. -#}\n"
        f"{{% macro redact_pii(expr) -%}}\n    {nested}\n{{%- endmacro %}}\n"
    )
    tests = "\n        or ".join(
        f"{{{{ expr }}}} {'~*' if r.ignore_case else '~'} {{{{ pii_{r.name}_pattern() }}}}"
        for r in RULES
    )
    parts.append(
        "{#- True when the text still holds anything a PII pattern matches. -#}\n"
        f"{{% macro contains_pii(expr) -%}}\n    (\n        {tests}\n    )\n{{%- endmacro %}}\n"
    )
    parts.append(
        "{#- How many placeholders a redacted text holds (a jump flags a rule matching too much).\n"
        "-#}\n"
        f"{{% macro count_redactions(expr) -%}}\n    {count_sql('{{ expr }}')}\n{{%- endmacro %}}\n"
    )
    return "\n".join(parts)


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if MACROS_FILE.read_text(encoding="utf-8") != text:
            print(f"{MACROS_FILE} is stale: run `python -m twin.quality.pii_macros`")
            return 1
        return 0
    MACROS_FILE.write_text(text, encoding="utf-8")
    print(f"wrote {MACROS_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
