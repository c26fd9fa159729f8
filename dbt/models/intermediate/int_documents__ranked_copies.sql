{{ config(materialized='ephemeral') }}
-- Live documents with text, numbered within their exact-duplicate group (same normalised hash).
select
    *,
    row_number() over copies   as copy_rank,
    first_value(document_id) over copies as canonical_document_id
from {{ ref('int_documents__cleaned') }}
where not is_deleted
  and word_count > 0
window copies as (
    partition by clean_hash
    order by published_at asc nulls last, document_id
)
