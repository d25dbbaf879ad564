"""Airflow DAG: run the cadp-med drop-folder ETL every 10 minutes.

The task shells out to ``anonymize_drop_folder.sh``, the same job cron runs, so both
paths behave identically: one manifest line per study, alerts on failure, and a failed
study makes the task fail (exit status 1) so Airflow retries and notifies.

Copy this file to the DAGs folder and set the Airflow Variables ``cadp_drop_dir``,
``cadp_output_dir`` and ``cadp_etl_script``; give the worker ``CADP_MED_KEY`` through
its environment or a secrets backend, never in the DAG.  Airflow is imported only
here; cadp-med's tests never import this module.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow import DAG
from airflow.models import Variable
from airflow.operators.bash import BashOperator

with DAG(
    dag_id="cadp_med_drop_folder",
    description="De-identify new DICOM study folders with cadp-med",
    schedule=timedelta(minutes=10),
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=1,  # the script is not meant to run twice at once on one drop folder
    default_args={"retries": 2, "retry_delay": timedelta(minutes=5)},
    tags=["cadp-med", "deid"],
) as dag:
    BashOperator(
        task_id="anonymize_drop_folder",
        bash_command=(
            "{{ var.value.cadp_etl_script }} "
            "{{ var.value.cadp_drop_dir }} {{ var.value.cadp_output_dir }}"
        ),
        env={
            "CADP_MED_ARGS": Variable.get("cadp_med_args", default_var="--pixels keep"),
            "MIN_AGE_MINUTES": "5",
        },
        append_env=True,  # keep the worker's PATH and CADP_MED_KEY
    )
