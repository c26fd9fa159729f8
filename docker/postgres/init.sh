#!/usr/bin/env bash
# First start of an empty data volume only (the image runs /docker-entrypoint-initdb.d once):
# the databases the embedded stack creates (twin, mlflow, airflow), each owned by its own login
# role, twin_rag's login role (owns nothing; the platform grants it what serving needs when it
# installs twin_rag), and pgvector in the warehouse. Passwords come from the container's environment.
set -eo pipefail

for var in TWIN_DB_PASSWORD MLFLOW_DB_PASSWORD AIRFLOW_DB_PASSWORD SERVING_DB_PASSWORD; do
  if [ -z "${!var}" ]; then
    echo "postgres/init.sh: $var is not set" >&2
    exit 1
  fi
done

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  --set=twin_password="$TWIN_DB_PASSWORD" \
  --set=mlflow_password="$MLFLOW_DB_PASSWORD" \
  --set=airflow_password="$AIRFLOW_DB_PASSWORD" \
  --set=serving_password="$SERVING_DB_PASSWORD" <<'SQL'
CREATE ROLE twin LOGIN PASSWORD :'twin_password';
CREATE ROLE mlflow LOGIN PASSWORD :'mlflow_password';
CREATE ROLE airflow LOGIN PASSWORD :'airflow_password';
CREATE ROLE twin_serving LOGIN PASSWORD :'serving_password';
-- the platform may end twin_rag's sessions (dropping a database twin_rag served)
GRANT twin_serving TO twin;
CREATE DATABASE twin OWNER twin;
CREATE DATABASE mlflow OWNER mlflow;
CREATE DATABASE airflow OWNER airflow;
SQL

# The extension needs a superuser; the twin role owns the database and creates its schemas.
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname twin <<'SQL'
CREATE EXTENSION IF NOT EXISTS vector;
SQL
