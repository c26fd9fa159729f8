-- Chunks whose stored hash or model differs from the current source and model.
-- :model is the current embedding model name@revision.
SELECT s.chunk_id
FROM staging.source_chunks AS s
LEFT JOIN vectors.chunks AS c USING (chunk_id)
WHERE c.chunk_id IS NULL
   OR c.content_hash IS DISTINCT FROM s.content_hash
   OR c.model IS DISTINCT FROM :model
ORDER BY s.chunk_id;
