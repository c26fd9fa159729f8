# syntax=docker/dockerfile:1
# TwinOps' Airflow image. Every Airflow component of docker-compose.yml (api-server, scheduler,
# dag-processor, triggerer, Celery worker, the airflow-init job) runs from this one image.
# Build context: the repository root; airflow.Dockerfile.dockerignore keeps it to what is copied.
FROM apache/airflow:3.3.2-python3.11

# Where torch comes from. requirements.txt pins the CPU build (`torch==X+cpu`, what `make setup`
# installs) and this default index serves it. On GPU hosts torch comes from PyTorch's CUDA index
# instead: set TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 (the CUDA variant your
# driver supports) in docker/.env, so training tasks on the worker get CUDA torch at the same
# pinned version.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

USER root
# git: crawling code repositories; g++: DeepSpeed compiles its ops on first use.
RUN apt-get update \
 && apt-get install -y --no-install-recommends git g++ \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/*
# Mount points of the named volumes, owned by airflow: Docker copies that into a fresh volume.
RUN install -d -o airflow -g 0 -m 0775 /models /opt/airflow/.twin \
 && install -d -o airflow -g 0 -m 0700 /opt/airflow/auth
USER airflow
WORKDIR /opt/airflow

# DeepSpeed ships as an sdist: build it without its native ops (they compile on first use).
ENV DS_BUILD_OPS=0 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The pinned runtime set. torch first, from TORCH_INDEX_URL; the pin loses its local `+cpu` label
# so that the same requirements file accepts the CPU or the CUDA build of that version.
COPY --chown=airflow:0 requirements.txt requirements-nodeps.txt /opt/twinops-build/
RUN set -eux; \
    cd /opt/twinops-build; \
    sed -E 's/^(torch==[^+[:space:]]+)\+[[:alnum:]]+/\1/' requirements.txt > requirements.portable.txt; \
    pip install --index-url "${TORCH_INDEX_URL}" "$(grep -E '^torch==' requirements.portable.txt)"; \
    pip install -r requirements.portable.txt; \
    pip install --no-deps -r requirements-nodeps.txt

# The project package, installed editable so that its project root is /opt/airflow (dags/, dbt/,
# expectations/ are found beside include/ as in a checkout).
COPY --chown=airflow:0 pyproject.toml README.md* ./
COPY --chown=airflow:0 include/ ./include/
RUN pip install --no-deps -e .

COPY --chown=airflow:0 dags/ ./dags/
COPY --chown=airflow:0 plugins/ ./plugins/
COPY --chown=airflow:0 dbt/ ./dbt/
COPY --chown=airflow:0 expectations/ ./expectations/
# Pools and variables, applied by airflow-init (`python -m twin.stack.airflow_objects declared`).
COPY --chown=airflow:0 airflow_settings.yaml ./

# The dbt manifest the twin_warehouse DAG renders from (the DAG refuses to load without it,
# rather than run `dbt ls` at every parse). `dbt parse` reads no database.
RUN python -m twin.warehouse.manifest && test -s dbt/target/manifest.json

# Fail the build, not the first task, if the executor or the project cannot be imported.
RUN python -c "import airflow.providers.celery.executors.celery_executor, twin.settings"
