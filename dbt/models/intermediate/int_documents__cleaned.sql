{{
    config(
        materialized='incremental',
        unique_key='document_id',
        incremental_strategy='merge',
        on_schema_change='sync_all_columns',
    )
}}
-- Clean, PII-redacted text for every raw document, deleted ones included (flagged).
-- Incremental on the raw watermark: only rows written to raw.documents since the newest row here.
with changed as (
    select *
    from {{ ref('stg_raw__documents') }}
    {% if is_incremental() %}
    where loaded_at > (select coalesce(max(loaded_at), '-infinity'::timestamptz) from {{ this }})
    {% endif %}
),

source_text as (
    select
        *,
        {{ document_source_text('document_kind', 'body_markdown', 'repository_files') }} as source_text
    from changed
),

-- `materialized`: the text columns below are read several times each; a CTE Postgres inlines would
-- repeat their regular expressions at every reference (about four times the work).
normalised as materialized (
    select
        *,
        {{ normalise_whitespace(strip_markup(normalise_whitespace('source_text'))) }} as plain_text
    from source_text
),

cleaned as materialized (
    select
        *,
        btrim(
            {{ normalise_whitespace(redact_pii(remove_boilerplate('plain_text'))) }},
            E' \n\t'
        ) as body
    from normalised
)

select
    document_id,
    url,
    platform,
    document_kind,
    author,
    nullif(btrim({{ redact_pii(normalise_whitespace(strip_markup('title'))) }}), '') as title,
    published_at,
    body,
    {{ word_count('body') }}                         as word_count,
    {{ normalised_hash('body') }}                    as clean_hash,
    {{ count_redactions('body') }}
        - {{ count_redactions('plain_text') }}       as redactions,
    content_hash,
    is_deleted,
    deleted_at,
    document_version,
    loaded_at
from cleaned
