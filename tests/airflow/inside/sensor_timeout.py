"""Run by Airflow's Python: what a LoaderRunSensor does when Airflow resumes it because its
deferral timed out (the triggerer's own signal, `__fail__` with the timeout reason), for each
setting given as JSON; prints the exception each raises, one JSON line."""

from __future__ import annotations

import json
import sys

from airflow.sdk.bases.operator import TRIGGER_FAIL_REPR, TriggerFailureReason

from harness.airflow.sensors import LoaderRunSensor

outcomes = []
for number, settings in enumerate(json.loads(sys.argv[1])):
    sensor = LoaderRunSensor(task_id=f"wait_{number}", pipeline="permits", **settings)
    timeout = {"error": TriggerFailureReason.TRIGGER_TIMEOUT}
    try:
        sensor.resume_execution(TRIGGER_FAIL_REPR, timeout, {})
    except Exception as raised:
        outcomes.append(type(raised).__name__)
    else:
        outcomes.append(None)
print(json.dumps(outcomes))
