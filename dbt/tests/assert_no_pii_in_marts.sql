{{ config(tags=['marts']) }}
-- Fails with every mart document whose title or body still matches a PII pattern (pii.sql).
select document_id, url, title
from {{ ref('documents') }}
where {{ contains_pii('body') }}
   or {{ contains_pii("coalesce(title, '')") }}
