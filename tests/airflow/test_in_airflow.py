"""The DAG files of `harness airflow dags` in Apache Airflow 3 (its own virtualenv, metadata on
SQLite): the folder imports with no database at all; dag.test() runs each generated DAG
against the real PostgreSQL, S3 and DeTrack fake, and the destinations are compared with the
sources field by field; the loader-run sensor defers and its trigger polls etl.process; the
shipments trigger announces new work once; exit codes become task states."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from subprocess import Popen
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from harness.demo.detrack_fake import DetrackFake
from tests.cli.support import closed_port, run
from tests.di.conftest import Hub, add_users
from tests.di.test_di_command import environment as di_environment
from tests.support.airflow import Airflow, airflow_connection, last_json
from tests.support.permits import assert_each_permit_moved_once, load_run, numbered, worker_env
from tests.support.pg import a_login_role
from tests.support.pgbouncer import pgbouncer
from tests.support.shipments import API_KEY, assert_detrack_matches_erp, insert_shipments, shipment

# the Airflow connection's (the test server trusts, and asks for none): characters a URL
# must encode, so that the raw and the encoded form are both looked for
PASSWORD = f"p@ss/w:rd%+ {uuid.uuid4().hex[:8]}"


def generate(db_url: str, folder: Path, *options: str) -> None:
    done = run({"DATABASE_URL": db_url}, "airflow", "dags", "--out", str(folder), *options)
    assert done.returncode == 0, done.stderr


def connection_env(
    db_url: str, folder: Path, user: str | None = None, **settings: str
) -> dict[str, str]:
    password = conninfo_to_dict(db_url).get("password") or PASSWORD
    return {
        "AIRFLOW__CORE__DAGS_FOLDER": str(folder),
        "AIRFLOW_CONN_PGFERRY_DEFAULT": airflow_connection(db_url, password, user),
        **settings,
    }


def dag_test(airflow: Airflow, folder: Path, dag_id: str, env: dict[str, str]) -> dict[str, Any]:
    done = airflow.run("run_dag.py", str(folder), dag_id, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert_no_password(done.stdout + done.stderr, airflow)
    return last_json(done.stdout)


def assert_no_password(output: str, airflow: Airflow) -> None:
    forms = (PASSWORD, quote(PASSWORD, safe=""), PASSWORD.split(" ")[0])
    logs = [log for log in (airflow.home / "logs").rglob("*") if log.is_file()]
    for text in [output, *(log.read_text(errors="replace") for log in logs)]:
        assert not any(form in text for form in forms)


@pytest.fixture
def dags(tmp_path: Path) -> Path:
    folder = tmp_path / "dags"
    folder.mkdir()
    return folder


def test_the_dag_folder_imports_with_no_database_and_no_connection(
    airflow: Airflow, conn: psycopg.Connection, db_url: str, dags: Path
) -> None:
    for name, group, after in (("orders", "sales", []), ("lines", "sales", ["orders"])):
        conn.execute(f"CREATE TABLE public.{name} (id integer PRIMARY KEY)")
        conn.execute(
            "SELECT etl.define_di_process(%s, p_source => 'qvp', p_source_table => %s,"
            " p_target_table => %s, p_group => %s, p_depends_on => %s)",
            [name, f"app.{name}", f"public.{name}", group, after],
        )
    generate(db_url, dags)

    parsed = airflow.run("parse_dags.py", str(dags))  # no AIRFLOW_CONN_*, no DATABASE_URL

    assert parsed.returncode == 0, parsed.stderr[-3000:]
    found = last_json(parsed.stdout)
    assert found["import_errors"] == {}
    assert sorted(found["dags"]) == ["pgferry_di_sales", "pgferry_permits", "pgferry_shipments"]
    sales = found["dags"]["pgferry_di_sales"]["tasks"]
    assert sales["lines"]["upstream"] == ["orders"]
    assert sales["lines"]["trigger_rule"].endswith("ALL_DONE")
    assert {t["type"] for t in sales.values()} == {"DiProcessOperator"}
    permits = found["dags"]["pgferry_permits"]["tasks"]
    assert permits["move_permits"]["upstream"] == ["loader_run_finished"]
    assert permits["loader_run_finished"]["type"] == "LoaderRunSensor"
    assert found["dags"]["pgferry_shipments"]["timetable"] == "AssetOrTimeSchedule"


def test_the_di_dag_runs_each_process_after_its_dependency_into_stg(
    airflow: Airflow, hub: Hub, s3_endpoint: str, dags: Path
) -> None:
    with hub.source("qvp") as source:
        add_users(source, 1, 120)
    with hub.source("svp") as source:
        add_users(source, 1, 40)
    hub.define("qvp_users", source="qvp", group="crm")
    hub.define("svp_users", source="svp", group="crm", depends_on=["qvp_users"])
    generate(hub.target_url, dags)
    env = {k: v for k, v in di_environment(hub, s3_endpoint).items() if k != "DATABASE_URL"}

    result = dag_test(airflow, dags, "pgferry_di_crm", connection_env(hub.target_url, dags, **env))

    assert result["state"] == "success", result
    assert result["tasks"]["qvp_users"]["result"]["merged"]["inserted"] == 120
    assert hub.stg_rows("qvp_users") == hub.source_rows("qvp")
    assert hub.stg_rows("svp_users") == hub.source_rows("svp")
    with hub.target() as target:
        runs = dict(
            target.execute(
                "SELECT pipeline, tstzrange(started_at, ended_at) FROM etl.process"
                " WHERE status = 'succeeded'"
            ).fetchall()
        )
    assert runs["qvp_users"].upper <= runs["svp_users"].lower  # after its dependency ended


@pytest.fixture
def permit_bucket(s3_endpoint: str, s3_credentials: None) -> str:
    from harness.s3 import make_client

    bucket = f"permits-{uuid.uuid4().hex[:8]}"
    make_client(s3_endpoint).create_bucket(Bucket=bucket)
    return bucket


@pytest.fixture(params=["direct", "pgbouncer"])
def airflow_db_url(request: pytest.FixtureRequest, db_url: str) -> Iterator[str]:
    """The database as the Airflow connection reaches it: straight, or through PgBouncer in
    transaction pooling mode (each transaction on any server connection)."""
    if request.param == "direct":
        yield db_url
    else:
        with pgbouncer(db_url) as url:
            yield url


@pytest.fixture
def waiting_dag(
    airflow: Airflow, dags: Path, db_url: str, airflow_db_url: str, s3_endpoint: str,
    permit_bucket: str,
) -> Iterator[Popen]:  # fmt: skip
    """dag.test() of the permit DAG started while the loader run is still running."""
    generate(db_url, dags, "--poll-seconds", "1")
    env = {k: v for k, v in worker_env(db_url, s3_endpoint, permit_bucket).items()
           if k != "DATABASE_URL"}  # fmt: skip
    if airflow_db_url != db_url:
        env["PGFERRY_LISTEN"] = "off"  # poll-only: no LISTEN through transaction pooling
    with airflow.running("run_dag.py", str(dags), "pgferry_permits",
                         env=connection_env(airflow_db_url, dags, **env)) as started:  # fmt: skip
        yield started


def read_until(process: Popen, text: str) -> str:
    """The process's output up to the first line that holds ``text``."""
    seen = []
    for line in process.stdout:
        seen.append(line)
        if text in line:
            return "".join(seen)
    raise AssertionError(f"ended before {text!r}:\n{''.join(seen)[-3000:]}")


def test_the_permit_dag_defers_until_the_loader_run_ends_then_moves_its_permits(
    airflow: Airflow, conn: psycopg.Connection, db_url: str, s3_endpoint: str,
    permit_bucket: str, waiting_dag: Popen,
) -> None:  # fmt: skip
    permits = numbered(30)
    process_id = load_run(conn, permits, status="running")

    read_until(waiting_dag, "no ended loader run of permits yet")  # deferred, polling
    assert conn.execute("SELECT count(*) FROM permit.permit").fetchone()[0] == 0
    conn.execute("SELECT etl.end_process(%s, 'succeeded', %s)", [process_id, len(permits)])
    output, _ = waiting_dag.communicate(timeout=300)

    assert waiting_dag.returncode == 0, output[-3000:]
    result = last_json(output)
    assert result["state"] == "success", result
    sensed = result["tasks"]["loader_run_finished"]["result"]
    assert (sensed["process_id"], sensed["status"]) == (process_id, "succeeded")
    assert_each_permit_moved_once(conn, s3_endpoint, permit_bucket, permits)
    consumed = conn.execute("SELECT consumed_at FROM etl.process WHERE process_id = %s",
                            [process_id]).fetchone()[0]  # fmt: skip
    assert consumed is not None
    assert_no_password(output, airflow)


def test_a_sensor_given_a_run_waits_for_it_and_fails_when_it_fails_moving_nothing(
    airflow: Airflow, conn: psycopg.Connection, db_url: str, dags: Path
) -> None:
    running = load_run(conn, numbered(3), status="running")
    (dags / "one_run.py").write_text(
        "from airflow.sdk import DAG\n"
        "from harness.airflow.operators import PermitRunOperator\n"
        "from harness.airflow.sensors import LoaderRunSensor\n"
        "with DAG(dag_id='one_run', schedule=None, params={'run': RUN}):\n"
        "    LoaderRunSensor(task_id='wait', pipeline='permits', poll_interval=0.2,\n"
        "                    process_id='{{ params.run }}') >> PermitRunOperator(task_id='move')\n".replace(
            "RUN", str(running)
        )
    )
    env = connection_env(db_url, dags)
    with airflow.running("run_dag.py", str(dags), "one_run", env=env) as waiting:
        read_until(waiting, "no ended loader run of permits yet")
        conn.execute("SELECT etl.end_process(%s, 'failed', 0, 'the source was empty')", [running])
        output, _ = waiting.communicate(timeout=300)

    result = last_json(output)
    assert result["state"] == "failed"
    assert result["tasks"]["wait"]["state"] == "failed"
    assert f"loader run {running} of permits ended failed: the source was empty" in output
    assert result["tasks"]["move"]["state"] == "upstream_failed"
    assert conn.execute("SELECT count(*) FROM permit.permit").fetchone()[0] == 0


def sensor_dag(folder: Path, dag_id: str, **sensor: object) -> None:
    """A DAG of one LoaderRunSensor on permits (``sensor`` its arguments) before a permit run."""
    arguments = ", ".join(f"{k}={v!r}" for k, v in sensor.items())
    (folder / f"{dag_id}.py").write_text(
        "from datetime import timedelta\n"
        "from airflow.sdk import DAG\n"
        "from harness.airflow.operators import PermitRunOperator\n"
        "from harness.airflow.sensors import LoaderRunSensor\n"
        f"with DAG(dag_id={dag_id!r}, schedule=None):\n"
        f"    LoaderRunSensor(task_id='wait', pipeline='permits', {arguments},\n"
        "                    retries=1, retry_delay=timedelta(0))"
        " >> PermitRunOperator(task_id='move')\n"
    )


def test_a_database_lost_while_the_sensor_waits_fails_the_task_to_be_retried(
    airflow: Airflow, conn: psycopg.Connection, db_url: str, dags: Path
) -> None:
    running = load_run(conn, numbered(2), status="running")
    sensor_dag(dags, "lost", process_id=str(running), poll_interval=0.2)
    with ExitStack() as bouncing:
        bouncer = bouncing.enter_context(pgbouncer(db_url))
        env = connection_env(bouncer, dags)
        with airflow.running("run_dag.py", str(dags), "lost", env=env, deadline=150) as waiting:
            read_until(waiting, "no ended loader run of permits yet")  # deferred, polling
            bouncing.close()  # PgBouncer stops: every poll is refused, as by a lost database
            output, _ = waiting.communicate(timeout=300)

    task = last_json(output)["tasks"]["wait"]
    assert (task["state"], task["try_number"]) == ("failed", 2)  # an outage: tried again
    assert "database unreachable" in output


def test_a_rescheduled_sensor_with_soft_fail_waits_rather_than_skips(
    airflow: Airflow, conn: psycopg.Connection, db_url: str, dags: Path
) -> None:
    running = load_run(conn, numbered(2), status="running")
    sensor_dag(dags, "again", process_id=str(running), deferrable=False, mode="reschedule",
               poll_interval=0.2, soft_fail=True)  # fmt: skip
    env = connection_env(db_url, dags)
    with airflow.running("run_dag.py", str(dags), "again", env=env) as waiting:
        read_until(waiting, "Rescheduling task")  # looked, found it running, gave the slot back
        conn.execute("SELECT etl.end_process(%s, 'succeeded', 2)", [running])
        output, _ = waiting.communicate(timeout=300)

    tasks = last_json(output)["tasks"]
    assert tasks["wait"]["state"] == "success"
    assert tasks["wait"]["result"]["process_id"] == running


def test_the_shipment_dag_sends_the_erp_shipments_to_detrack(
    airflow: Airflow, conn: psycopg.Connection, db_url: str, dags: Path, fake: DetrackFake
) -> None:
    insert_shipments(conn, [shipment() for _ in range(20)])
    generate(db_url, dags)
    env = {"DETRACK_BASE_URL": fake.base_url, "DETRACK_API_KEY": API_KEY}

    result = dag_test(airflow, dags, "pgferry_shipments", connection_env(db_url, dags, **env))

    assert result["state"] == "success", result
    assert len(fake.jobs()) == 20
    assert_detrack_matches_erp(conn, fake)


@pytest.mark.parametrize(
    ("settings", "tries", "said"),
    [
        ({"DETRACK_API_KEY": ""}, ["failed"], "DETRACK_API_KEY is empty"),  # exit 2: no retry
        # exit 3, retried: the retry finds the job put off to its next attempt, nothing due
        (
            {"DETRACK_BASE_URL": f"http://127.0.0.1:{closed_port()}"},
            ["up_for_retry", "success"],
            "ended with exit 3",
        ),
    ],
    ids=["configuration", "unreachable"],
)
def test_a_run_that_cannot_succeed_fails_at_once_and_one_that_may_later_is_retried(
    airflow: Airflow, conn: psycopg.Connection, db_url: str, dags: Path, fake: DetrackFake,
    settings: dict[str, str], tries: list[str], said: str,
) -> None:  # fmt: skip
    insert_shipments(conn, [shipment()])
    (dags / "send.py").write_text(
        "from datetime import timedelta\n"
        "from airflow.sdk import DAG\n"
        "from harness.airflow.operators import ShipmentRunOperator\n"
        "with DAG(dag_id='send', schedule=None):\n"
        "    ShipmentRunOperator(task_id='send', retries=1, retry_delay=timedelta(0))\n"
    )
    env = {"DETRACK_BASE_URL": fake.base_url, "DETRACK_API_KEY": API_KEY, **settings}

    done = airflow.run("run_dag.py", str(dags), "send", env=connection_env(db_url, dags, **env))

    task = last_json(done.stdout)["tasks"]["send"]
    assert (task["state"], task["try_number"]) == (tries[-1], len(tries))
    assert said in done.stdout
    assert fake.jobs() == []


@pytest.fixture
def worker_login(server_url: str, db_url: str) -> Iterator[str]:
    """A login role that is only a pgferry_worker, as docs/airflow.md says to connect."""
    with a_login_role(server_url, "IN ROLE pgferry_worker") as name:
        yield name


def test_the_shipments_trigger_announces_waiting_work_once_until_more_comes(
    airflow: Airflow, conn: psycopg.Connection, db_url: str, dags: Path, worker_login: str
) -> None:
    kwargs = {"poll_interval": 0.05, "repeat_after": 3600}
    trigger = ("harness.airflow.triggers.ShipmentsDueTrigger", json.dumps(kwargs), "2")
    env = connection_env(db_url, dags, user=worker_login)
    with airflow.running("run_trigger.py", *trigger, env=env, deadline=120) as watcher:
        read_until(watcher, "no shipment waiting")
        insert_shipments(conn, [shipment(), shipment()])
        first = read_until(watcher, '"event"')
        quiet = [read_until(watcher, "2 shipment(s) waiting, none new") for _ in range(3)]
        insert_shipments(conn, [shipment()])
        second = read_until(watcher, '"event"')
        assert watcher.wait(timeout=60) == 0

    assert json.loads(first.splitlines()[-1])["event"]["waiting"] == 2
    assert not any('"event"' in chunk for chunk in quiet)  # polled on, announced nothing
    assert json.loads(second.splitlines()[-1])["event"]["waiting"] == 3


def test_the_hook_gives_libpq_every_part_of_the_connection_as_it_was_entered(
    airflow: Airflow,
) -> None:
    extra = {"options": "-c search_path=a,b", "application_name": "my app", "sslmode": "prefer"}
    given = [
        {"conn_type": "pgferry", "host": "db.example", "port": 5433, "login": "us er",
         "password": PASSWORD, "schema": "my db", "extra": json.dumps(extra)},
        {"conn_type": "pgferry", "host": "/var/run/postgresql", "port": 5432, "login": "w",
         "schema": "pgferry"},
        {"conn_type": "postgres", "host": "::1", "port": 5432, "schema": "pgferry"},
        {"conn_type": "pgferry", "port": 5434, "schema": "pgferry"},
    ]  # fmt: skip

    done = subprocess.run(
        airflow.command("database_urls.py"),
        input="\n".join(map(json.dumps, given)),
        env=airflow.env(),
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 0, done.stderr[-3000:]
    read = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert read == [
        {"host": "db.example", "port": "5433", "user": "us er", "password": PASSWORD,
         "dbname": "my db", **extra},
        {"host": "/var/run/postgresql", "port": "5432", "user": "w", "dbname": "pgferry"},
        {"host": "::1", "port": "5432", "dbname": "pgferry"},
        {"port": "5434", "dbname": "pgferry"},
    ]  # fmt: skip


def test_a_sensor_that_sees_no_run_end_in_time_is_skipped_only_when_told(
    airflow: Airflow, db_url: str, dags: Path
) -> None:
    (dags / "idle.py").write_text(
        "from airflow.sdk import DAG\n"
        "from harness.airflow.operators import PermitRunOperator\n"
        "from harness.airflow.sensors import LoaderRunSensor\n"
        "with DAG(dag_id='idle', schedule=None):\n"
        "    LoaderRunSensor(task_id='wait', pipeline='permits', deferrable=False,\n"
        "                    poll_interval=0.2, timeout=1, skip_on_timeout=True)"
        " >> PermitRunOperator(task_id='move')\n"
    )

    poked = dag_test(airflow, dags, "idle", connection_env(db_url, dags))
    resumed = airflow.run(
        "sensor_timeout.py", json.dumps([{}, {"skip_on_timeout": True}, {"soft_fail": True}])
    )

    assert {t: v["state"] for t, v in poked["tasks"].items()} == {
        "wait": "skipped",
        "move": "skipped",
    }
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert last_json(resumed.stdout) == [
        "AirflowSensorTimeout",  # a timeout is a failure unless told otherwise
        "AirflowSkipException",
        "AirflowSkipException",
    ]


def test_a_fault_that_quotes_the_database_url_reaches_airflow_without_its_password(
    airflow: Airflow, db_url: str, dags: Path
) -> None:
    done = airflow.run("fault_message.py", env=connection_env(db_url, dags))

    raised = last_json(done.stdout)
    assert raised["type"] == "AirflowFailException"  # a bug in the work: no retry
    assert "unexpected error: RuntimeError: cannot use postgresql://" in raised["message"]
    assert_no_password(raised["message"], airflow)
