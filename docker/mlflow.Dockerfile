# syntax=docker/dockerfile:1
# MLflow tracking server and model registry: Postgres backend store, artifacts proxied to S3.
# The versions are the project's pins, with requirements.txt as the constraints file, so the
# server runs the MLflow the Airflow image's clients run. Build context: the repository root.
FROM python:3.11-slim

COPY requirements.txt /tmp/constraints.txt
RUN pip install --no-cache-dir --disable-pip-version-check -c /tmp/constraints.txt \
      mlflow==3.17.2 flask-wtf==1.3.0 psycopg2-binary==2.9.13 boto3==1.44.5 \
 && rm /tmp/constraints.txt \
 && useradd --create-home --uid 10001 mlflow

USER mlflow
WORKDIR /home/mlflow
EXPOSE 5000
CMD ["mlflow", "server", "--host", "0.0.0.0", "--port", "5000"]
