"""Run by Airflow's Python: parse a DAG folder as Airflow's DAG processor would and print, as
JSON, the import errors and each DAG's tasks, upstreams, trigger rules and schedule."""

from __future__ import annotations

import json
import sys

from airflow.dag_processing.dagbag import DagBag


def main(folder: str) -> None:
    bag = DagBag(dag_folder=folder)
    dags = {}
    for dag_id, dag in bag.dags.items():
        dags[dag_id] = {
            "timetable": type(dag.timetable).__name__,
            "tasks": {
                task.task_id: {
                    "type": type(task).__name__,
                    "upstream": sorted(task.upstream_task_ids),
                    "trigger_rule": str(task.trigger_rule),
                }
                for task in dag.tasks
            },
        }
    print(json.dumps({"import_errors": bag.import_errors, "dags": dags}))


if __name__ == "__main__":
    main(sys.argv[1])
