"""pgferry on Apache Airflow 3 (the `airflow` extra): a hook that takes the database from an
Airflow connection, operators for the permit and shipment runs and for DI processes, a
deferrable sensor for loader runs, an event trigger for due shipments, and the DAG files that
`harness airflow dags` writes (harness.airflow.dags, which needs no Airflow to run).

Only harness.airflow.dags and harness.airflow.provider may be imported without Airflow."""
