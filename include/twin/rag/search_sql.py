"""SQL building blocks of the searches: filters as parameterised WHERE clauses, and the terms
and tsquery text of full-text search."""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from typing import Any

from psycopg import sql

from twin.rag.query import SearchFilters

MAX_TERM_FREQUENCY = 0.2  # a query term in more chunks than this is treated like a stop word
MAX_QUERY_TERMS = 10  # the rarest terms of a long question are enough to find its chunks
# Most common lexemes of `tsv` and their frequencies, from the table (behind the view) itself.
TERM_STATS_SQL = """
with base as (
    select coalesce(
        (select d.refobjid from pg_rewrite r
         join pg_depend d on d.classid = 'pg_rewrite'::regclass and d.objid = r.oid
          and d.refclassid = 'pg_class'::regclass and d.refobjid <> r.ev_class
         where r.ev_class = %(rel)s::regclass limit 1),
        %(rel)s::regclass) as oid
)
select s.most_common_elems::text::text[], s.most_common_elem_freqs
from base
join pg_class c on c.oid = base.oid
join pg_namespace n on n.oid = c.relnamespace
join pg_stats s on s.schemaname = n.nspname and s.tablename = c.relname and s.attname = 'tsv'
"""
_WEBSEARCH_SYNTAX = re.compile(r"\"|(?:^|\s)-\w|\bor\b", re.IGNORECASE)


def filter_clause(filters: SearchFilters | None) -> tuple[sql.Composable, dict[str, Any]]:
    """A WHERE condition for `filters` (TRUE when empty) and its parameters; values never inline."""
    parts: list[sql.Composable] = []
    params: dict[str, Any] = {}
    if filters is not None:
        if filters.author:
            parts.append(sql.SQL("author = %(f_author)s"))
            params["f_author"] = filters.author
        if filters.platforms:
            parts.append(sql.SQL("platform = any(%(f_platforms)s)"))
            params["f_platforms"] = list(filters.platforms)
        if filters.document_kinds:
            parts.append(sql.SQL("document_kind = any(%(f_kinds)s)"))
            params["f_kinds"] = list(filters.document_kinds)
        if filters.published_after:
            parts.append(sql.SQL("published_at >= %(f_after)s"))
            params["f_after"] = filters.published_after
        if filters.published_before:
            parts.append(sql.SQL("published_at < %(f_before)s"))
            params["f_before"] = filters.published_before
    if not parts:
        return sql.SQL("true"), params
    return sql.SQL(" and ").join(parts), params


def is_websearch_syntax(text: str) -> bool:
    """Whether `text` uses web-search operators (quotes, `or`, `-word`), honoured as written."""
    return bool(_WEBSEARCH_SYNTAX.search(text))


def select_terms(
    lexemes: Sequence[str],
    frequencies: Mapping[str, float],
    max_frequency: float = MAX_TERM_FREQUENCY,
    max_terms: int = MAX_QUERY_TERMS,
) -> tuple[list[str], str]:
    """The query terms full-text search matches on, rarest first, and how: "|" (any) or "&" (all).

    Terms found in more than `max_frequency` of the chunks say little about a question and would
    make an any-term match return most of the table, so they are left out; when every term is
    that common, all of them are required instead. At most `max_terms` terms are kept.
    """
    ordered = sorted(lexemes, key=lambda lex: (frequencies.get(lex, 0.0), lex))
    informative = [lex for lex in ordered if frequencies.get(lex, 0.0) <= max_frequency]
    if informative:
        return informative[:max_terms], "|"
    return ordered[:max_terms], "&"


def tsquery_term(lexeme: str) -> str:
    """`lexeme` as a quoted tsquery operand (matched as is, without further normalisation)."""
    return "'" + lexeme.replace("\\", "\\\\").replace("'", "''") + "'"


def match_tsquery(terms: Sequence[str], op: str = "|", min_terms: int = 1) -> str:
    """tsquery text matching chunks with any (`op` "|") or all ("&") of `terms`.

    With `min_terms` 2 and an any-term match, it requires two of the terms instead: an OR of
    pairwise ANDs, so the GIN index, not a later filter, discards chunks sharing a single word.
    """
    quoted = [tsquery_term(t) for t in terms]
    if op == "|" and min_terms >= 2 and len(quoted) >= 2:
        return " | ".join(f"({a} & {b})" for a, b in itertools.combinations(quoted, 2))
    return f" {op} ".join(quoted)
