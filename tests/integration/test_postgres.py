"""The warehouse through the project's connection factory: pgvector and its HNSW index."""

import numpy as np
import pytest

from twin.settings import Settings
from twin.store.warehouse import warehouse_connection

pytestmark = pytest.mark.integration


def test_hnsw_index_answers_nearest_neighbour_queries(stack_settings: Settings) -> None:
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(2000, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    query = vectors[123] + 0.01 * rng.normal(size=16).astype(np.float32)

    with warehouse_connection(stack_settings) as conn:
        conn.execute("create temporary table probe (id int primary key, embedding vector(16))")
        with conn.cursor().copy("copy probe (id, embedding) from stdin") as copy:
            for i, vec in enumerate(vectors):
                copy.write_row((i, "[" + ",".join(f"{x:.7f}" for x in vec) + "]"))
        conn.execute("create index on probe using hnsw (embedding vector_cosine_ops)")
        conn.execute("analyze probe")
        conn.execute("set local enable_seqscan = off")
        sql = "select id from probe order by embedding <=> %s limit 5"
        plan = "\n".join(r[0] for r in conn.execute("explain " + sql, (query,)).fetchall())
        ids = [r[0] for r in conn.execute(sql, (query,)).fetchall()]

    exact = np.argsort(-(vectors @ query))[:5].tolist()
    assert "probe_embedding_idx" in plan, plan
    assert ids[0] == 123
    assert len(set(ids) & set(exact)) >= 4
