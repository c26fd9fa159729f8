"""Example DAG that passes every dagcheck rule."""

import pendulum
from airflow.sdk import dag, task


@dag(
    schedule="@daily",
    start_date=pendulum.datetime(2024, 1, 1, tz="Europe/Stockholm"),
    catchup=False,
    default_args={"retries": 2},
)
def load_shipments():
    @task
    def load_shipments_for_interval(data_interval_start=None, data_interval_end=None):
        return {"start": str(data_interval_start), "end": str(data_interval_end)}

    load_shipments_for_interval()


load_shipments()
