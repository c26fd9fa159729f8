-- Live documents whose clean text is identical (after normalisation) to an earlier-published one,
-- with the copy that is kept. They do not reach the marts.
select
    document_id,
    canonical_document_id as duplicate_of,
    clean_hash,
    url,
    platform,
    title,
    published_at
from {{ ref('int_documents__ranked_copies') }}
where copy_rank > 1
