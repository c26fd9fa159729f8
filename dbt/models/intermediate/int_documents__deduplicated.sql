-- Live documents with text, one per exact-duplicate group (same normalised hash): the earliest
-- published copy is kept (ties: the smallest document_id); the others are in
-- int_documents__exact_duplicates.
with ranked as (
    select * from {{ ref('int_documents__ranked_copies') }}
)

select
    document_id,
    url,
    platform,
    document_kind,
    author,
    title,
    published_at,
    body,
    word_count,
    clean_hash,
    redactions,
    content_hash,
    loaded_at
from ranked
where copy_rank = 1
