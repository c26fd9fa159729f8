{{
    config(
        materialized='incremental',
        unique_key='document_id',
        incremental_strategy='merge',
        on_schema_change='sync_all_columns',
        pre_hook="{{ clean_document_function(this.schema) }}",
    )
}}
-- Clean, PII-redacted text for every raw document, deleted ones included (flagged).
-- Incremental on the raw watermark: only rows written to raw.documents since the newest row here.
-- The cleaning itself is the function `clean_document` (macros/clean_document.sql, installed by
-- the pre-hook), which Postgres can run in parallel workers.
with changed as (
    select *
    from {{ ref('stg_raw__documents') }}
    {% if is_incremental() %}
    where loaded_at > (select coalesce(max(loaded_at), '-infinity'::timestamptz) from {{ this }})
    {% endif %}
),

-- `materialized`: each column of the cleaning's result is read from one call, not a call each.
cleaned as materialized (
    select
        changed.*,
        {{ this.schema }}.clean_document(document_kind, body_markdown, repository_files, title)
            as clean
    from changed
)

select
    document_id,
    url,
    platform,
    document_kind,
    author,
    (clean).title,
    published_at,
    (clean).body,
    (clean).word_count,
    (clean).clean_hash,
    (clean).redactions,
    content_hash,
    is_deleted,
    deleted_at,
    document_version,
    loaded_at
from cleaned
