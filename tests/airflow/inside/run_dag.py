"""Run by Airflow's Python: one DAG run of a DAG in a folder with dag.test() (no scheduler,
triggers run in line), then print as JSON the run's state and each task's state, tries and
return value."""

from __future__ import annotations

import json
import sys

from airflow.dag_processing.dagbag import DagBag
from airflow.models import TaskInstance
from airflow.models.xcom import XComModel
from airflow.utils.session import create_session


def main(folder: str, dag_id: str) -> None:
    bag = DagBag(dag_folder=folder)
    if bag.import_errors:
        raise SystemExit(f"import errors: {bag.import_errors}")
    run = bag.get_dag(dag_id).test()
    with create_session() as session:
        instances = session.query(TaskInstance).filter_by(dag_id=dag_id, run_id=run.run_id)
        tasks = {}
        for ti in instances:
            xcom = (
                session.query(XComModel)
                .filter_by(dag_id=dag_id, run_id=run.run_id, task_id=ti.task_id, key="return_value")
                .one_or_none()
            )
            tasks[ti.task_id] = {
                "state": ti.state,
                "try_number": ti.try_number,
                "result": xcom.value if xcom is not None else None,
            }
    print(json.dumps({"state": str(run.state), "tasks": tasks}, default=str))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
