{{ config(materialized='table') }}
-- One row per source file of a published repository: path, language and clean, PII-redacted text,
-- so the feature pipeline can chunk code per function and class. Documentation files (markdown,
-- reStructuredText) are part of `documents.body` already, each under its own path heading.
with files as (
    select
        s.document_id,
        f.value ->> 'path'                      as path,
        coalesce(f.value ->> 'language', '')    as language,
        coalesce(f.value ->> 'text', '')        as source_text
    from {{ ref('stg_raw__documents') }} as s
    cross join lateral jsonb_array_elements(
        case when jsonb_typeof(s.repository_files) = 'array'
             then s.repository_files else '[]'::jsonb end
    ) as f(value)
    where s.document_kind = 'repository'
      and not s.is_deleted
      and coalesce(f.value ->> 'language', '') not in ('markdown', 'restructuredtext')
      and nullif(f.value ->> 'path', '') is not null
),

cleaned as (
    select
        f.document_id,
        f.path,
        f.language,
        btrim({{ redact_pii(normalise_whitespace('f.source_text')) }}, E'\n') as content
    from files as f
    join {{ ref('documents') }} as d on d.document_id = f.document_id
)

select
    document_id,
    path,
    language,
    content,
    md5(content)                     as content_hash,
    {{ count_redactions('content') }} as redactions
from cleaned
where content <> ''
