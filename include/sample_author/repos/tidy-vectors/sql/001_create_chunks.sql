-- Chunks with their source text, hash, model version, vector and keyword index.
CREATE EXTENSION IF NOT EXISTS vector;
CREATE SCHEMA IF NOT EXISTS vectors;

CREATE TABLE IF NOT EXISTS vectors.chunks (
    chunk_id      text PRIMARY KEY,
    document_id   text NOT NULL,
    position      integer NOT NULL,
    content       text NOT NULL,
    content_hash  text NOT NULL,
    model         text NOT NULL,
    embedding     vector(384) NOT NULL,
    tsv           tsvector GENERATED ALWAYS AS (to_tsvector('english', content)) STORED,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS chunks_embedding ON vectors.chunks
    USING hnsw (embedding vector_cosine_ops);
CREATE INDEX IF NOT EXISTS chunks_tsv ON vectors.chunks USING gin (tsv);
CREATE INDEX IF NOT EXISTS chunks_document ON vectors.chunks (document_id);
