{{ config(materialized='view') }}
-- Every recorded duplicate beside the copy that was kept, for people to inspect: exact copies
-- (same normalised text) and near copies (MinHash LSH, estimated Jaccard).
with deduplicated as (
    select * from {{ ref('int_documents__deduplicated') }}
),

near as (
    select
        e.document_id         as duplicate_document_id,
        e.near_duplicate_of   as canonical_document_id,
        'near'                as match_type,
        e.jaccard
    from {{ source('enrichment', 'document_enrichment') }} as e
    join deduplicated as d
      on d.document_id = e.document_id
     and d.clean_hash = e.clean_hash
    where e.near_duplicate_of is not null
),

exact as (
    select
        document_id           as duplicate_document_id,
        duplicate_of          as canonical_document_id,
        'exact'               as match_type,
        1.0::double precision as jaccard
    from {{ ref('int_documents__exact_duplicates') }}
),

pairs as (
    select * from near
    union all
    select * from exact
)

select
    p.duplicate_document_id,
    p.canonical_document_id,
    p.match_type,
    p.jaccard,
    dup.platform   as duplicate_platform,
    dup.url        as duplicate_url,
    dup.title      as duplicate_title,
    can.platform   as canonical_platform,
    can.url        as canonical_url,
    can.title      as canonical_title
from pairs as p
join {{ ref('int_documents__cleaned') }} as dup on dup.document_id = p.duplicate_document_id
join {{ ref('int_documents__cleaned') }} as can on can.document_id = p.canonical_document_id
