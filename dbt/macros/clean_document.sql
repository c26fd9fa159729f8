{#- The whole cleaning of one document as a database function, `<schema>.clean_document`: the
    source text (`document_source_text`), whitespace and markup normalised, boilerplate lines
    removed, PII redacted, and what `int_documents__cleaned` derives from the clean body.

    As one opaque function marked PARALLEL SAFE, a build's query can run it in Postgres' parallel
    workers, on every core: written inline, its correlated subqueries (a repository's files, the
    line-by-line boilerplate removal) held the work in one backend. PL/pgSQL, so the planner never
    inlines it back. It is replaced only when its definition changed (`install_function`).

    The macro is the model's pre-hook, inside its transaction: it also lets this transaction's
    plans scan tables of any size in parallel (`parallel_scans_of_any_size`). -#}
{% macro clean_document_function(schema) -%}
{%- set definition -%}
create or replace function {{ schema }}.clean_document(
    document_kind text,
    body_markdown text,
    repository_files jsonb,
    raw_title text,
    out title text,
    out body text,
    out word_count integer,
    out clean_hash text,
    out redactions integer
)
language plpgsql immutable parallel safe cost {{ clean_document_cost() }}
as $clean$
declare
    plain_text text;
begin
    plain_text := {{ normalise_whitespace(strip_markup(normalise_whitespace(
        document_source_text('document_kind', 'body_markdown', 'repository_files')))) }};
    body := btrim(
        {{ normalise_whitespace(redact_pii(remove_boilerplate('plain_text'))) }},
        E' \n\t'
    );
    title := nullif(btrim({{ redact_pii(normalise_whitespace(strip_markup('raw_title'))) }}), '');
    word_count := {{ word_count('body') }};
    clean_hash := {{ normalised_hash('body') }};
    redactions := {{ count_redactions('body') }} - {{ count_redactions('plain_text') }};
end
$clean$
{%- endset -%}
{{ install_function(schema, 'clean_document', 'text, text, jsonb, text', definition) }};
{{ parallel_scans_of_any_size() }}
{%- endmacro %}

{#- What one call costs the planner, in `cpu_operator_cost` units (0.0025 of a page read): about
    1 ms of regular expressions per document, some 50 page reads. -#}
{% macro clean_document_cost() -%}
20000
{%- endmacro %}
