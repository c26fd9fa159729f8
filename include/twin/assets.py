"""The data assets that chain the pipelines (Airflow data-aware scheduling), by name and URI, the
pools the pipelines' heavy tasks share, and the Celery queues that route them to workers."""

RAW_DOCUMENTS = {"name": "raw_documents", "uri": "mongo://twin/documents"}
WAREHOUSE_MARTS = {
    "name": "warehouse_marts",
    "uri": "postgres://warehouse:5432/twin/marts/documents",
}
VECTOR_CHUNKS = {"name": "vector_chunks", "uri": "postgres://warehouse:5432/twin/vectors/chunks"}
DATASETS = {"name": "datasets", "uri": "postgres://warehouse:5432/twin/ml/dataset_versions"}
MODEL_CANDIDATES = {"name": "model_candidates", "uri": "mlflow://twin-llm"}

# Pools of airflow_settings.yaml that bound concurrent heavy tasks across DAGs (the embedded stack
# and production's airflow-init create them; a task naming an undeclared pool would never run).
CRAWL_POOL = "crawl"
EMBEDDING_POOL = "embedding"
TRAINING_POOL = "training"

# Celery queues (CeleryExecutor; LocalExecutor ignores them). Crawling and embedding run on their
# own queues so a team can give them their own workers; training runs only on workers started for
# `TRAINING_QUEUE` (the GPU machines), which take nothing else. Production's workers
# (docker/docker-compose.yml) and the embedded stack's Celery mode listen on exactly these.
DEFAULT_QUEUE = "default"
CRAWL_QUEUE = "crawl"
EMBEDDING_QUEUE = "embedding"
TRAINING_QUEUE = "training"
GENERAL_QUEUES = (DEFAULT_QUEUE, CRAWL_QUEUE, EMBEDDING_QUEUE)
