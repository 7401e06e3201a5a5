"""Run by Airflow's Python: the URL PgferryHook builds for each Airflow connection given (JSON
lines on stdin, as AIRFLOW_CONN_* takes them), as libpq reads it back, one JSON line each."""

from __future__ import annotations

import json
import sys

from airflow.sdk import Connection
from psycopg.conninfo import conninfo_to_dict

from harness.airflow.hook import database_url

for line in sys.stdin:
    fields = json.loads(line)
    connection = Connection(conn_id="pgferry_default", **fields)
    print(json.dumps(conninfo_to_dict(database_url(connection))))
