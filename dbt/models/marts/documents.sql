{%- set columns = [
    'document_id', 'author', 'platform', 'document_kind', 'title', 'url', 'published_at',
    'word_count', 'language', 'language_confidence', 'body', 'clean_hash', 'updated_at',
] -%}
{{
    config(
        materialized='incremental',
        unique_key='document_id',
        incremental_strategy='merge',
        on_schema_change='sync_all_columns',
        post_hook=[
            "delete from {{ this }} as m
             where not exists (
                     select 1 from {{ ref('int_documents__deduplicated') }} as d
                     where d.document_id = m.document_id)
                or exists (
                     select 1
                     from {{ source('enrichment', 'document_enrichment') }} as e
                     join {{ ref('int_documents__deduplicated') }} as d
                       on d.document_id = e.document_id and d.clean_hash = e.clean_hash
                     where e.document_id = m.document_id and e.near_duplicate_of is not null)",
            "{{ refuse_written_pii('document_id', ['body', 'title']) }}",
        ],
    )
}}
-- One row per unique, live, clean document: exact duplicates (int_documents__deduplicated) and
-- near-duplicates (enrichment) left out. Incremental: only rows that differ from what the mart
-- holds are merged, the first post-hook removes documents that were deleted upstream or became
-- duplicates, and the second fails the build (rolling it back) when a row it wrote still matches a
-- PII pattern. A document whose enrichment is stale (its text changed, the enrichment step has not
-- run yet) keeps its previous row until it has.
with deduplicated as (
    select * from {{ ref('int_documents__deduplicated') }}
),

enrichment as (
    select * from {{ source('enrichment', 'document_enrichment') }}
),

publishable as (
    select
        d.document_id,
        d.author,
        d.platform,
        d.document_kind,
        d.title,
        d.url,
        d.published_at,
        d.word_count,
        e.language,
        e.language_confidence,
        d.body,
        d.clean_hash,
        greatest(d.loaded_at, e.computed_at) as updated_at
    from deduplicated as d
    join enrichment as e
      on e.document_id = d.document_id
     and e.clean_hash = d.clean_hash
    where e.near_duplicate_of is null
)

select {{ columns | join(', ') }}
from publishable as p
{% if is_incremental() %}
where not exists (
    select 1
    from {{ this }} as t
    where t.document_id = p.document_id
      and (t.{{ columns | join(', t.') }}) is not distinct from (p.{{ columns | join(', p.') }})
)
{% endif %}
