-- Swap a freshly built index in for the current one, in one transaction.
BEGIN;
ALTER INDEX IF EXISTS vectors.chunks_embedding RENAME TO chunks_embedding_old;
ALTER INDEX vectors.chunks_embedding_next RENAME TO chunks_embedding;
COMMIT;
DROP INDEX IF EXISTS vectors.chunks_embedding_old;
