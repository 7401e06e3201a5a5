"""`harness airflow dags`: DAG files from the DI metadata, written whole and only when changed,
files of groups that are gone removed; the provider entry point Airflow finds. (That Airflow
parses and runs the files is tests/airflow/test_in_airflow.py.)"""

from __future__ import annotations

import ast
from importlib.metadata import entry_points
from pathlib import Path

import psycopg
import pytest

from harness.airflow.provider import get_provider_info
from tests.cli.support import run

GROUPS = {"sales": ["orders", "order_lines"], "hr": ["staff"]}


def define(conn: psycopg.Connection, name: str, group: str, after: list[str] = ()) -> None:
    conn.execute(f"CREATE TABLE IF NOT EXISTS public.{name} (id integer PRIMARY KEY)")
    conn.execute(
        "SELECT etl.define_di_process(%s, p_source => 'qvp', p_source_table => %s,"
        " p_target_table => %s, p_group => %s, p_depends_on => %s)",
        [name, f"app.{name}", f"public.{name}", group, list(after)],
    )


def test_one_dag_file_per_group_with_each_process_after_those_it_depends_on(
    conn: psycopg.Connection, db_url: str, tmp_path: Path
) -> None:
    define(conn, "orders", "sales")
    define(conn, "order_lines", "sales", ["orders", "staff"])  # staff: another group's
    define(conn, "staff", "hr")

    done = run({"DATABASE_URL": db_url}, "airflow", "dags", "--out", str(tmp_path))

    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "pgferry_di_hr.py",
        "pgferry_di_sales.py",
        "pgferry_permits.py",
        "pgferry_shipments.py",
    ]
    sales = (tmp_path / "pgferry_di_sales.py").read_text()
    ast.parse(sales)
    assert 'process="orders"' in sales and 'process="order_lines"' in sales
    assert 'tasks["orders"] >> tasks["order_lines"]' in sales
    assert "staff" not in sales  # a dependency in another group is met, as in `di run --group`
    assert 'trigger_rule="all_done"' in sales  # a failed upstream does not hold it back
    for text in map(Path.read_text, tmp_path.iterdir()):
        ast.parse(text)
        assert "psycopg" not in text and "DATABASE_URL" not in text  # nothing read at parse


def test_a_second_run_leaves_unchanged_files_and_removes_a_gone_groups_but_no_others(
    conn: psycopg.Connection, db_url: str, tmp_path: Path
) -> None:
    define(conn, "orders", "sales")
    define(conn, "staff", "hr")
    env = {"DATABASE_URL": db_url}
    assert run(env, "airflow", "dags", "--out", str(tmp_path)).returncode == 0
    own = tmp_path / "pgferry_mine.py"
    own.write_text("# a DAG of the user's own\n")
    written = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    conn.execute("DELETE FROM etl.di_process WHERE name = 'staff'")

    again = run(env, "airflow", "dags", "--out", str(tmp_path))

    assert again.returncode == 0, again.stderr
    assert "pgferry_di_hr.py" in again.stdout and "removed" in again.stdout
    assert not (tmp_path / "pgferry_di_hr.py").exists()
    assert own.read_text() == "# a DAG of the user's own\n"
    for name in ("pgferry_di_sales.py", "pgferry_permits.py", "pgferry_shipments.py"):
        assert (tmp_path / name).stat().st_mtime_ns == written[name], name
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_an_out_that_is_a_file_is_a_usage_error(db_url: str, tmp_path: Path) -> None:
    target = tmp_path / "dags"
    target.write_text("")

    done = run({"DATABASE_URL": db_url}, "airflow", "dags", "--out", str(target))

    assert done.returncode == 2
    said = " ".join(done.stderr.replace("│", " ").split())  # Typer's box wraps long lines
    assert "Invalid value for --out" in said and "is a file, not a folder" in said
    assert "Traceback" not in done.stderr


def test_a_schedule_airflow_would_refuse_is_a_usage_error_and_nothing_is_written(
    db_url: str, tmp_path: Path
) -> None:
    env = {"DATABASE_URL": db_url}

    done = run(env, "airflow", "dags", "--out", str(tmp_path), "--di-schedule", "every day")
    fine = run(
        env, "airflow", "dags", "--out", str(tmp_path / "ok"), "--di-schedule", "5 4 * * 1-5"
    )

    assert done.returncode == 2
    said = " ".join(done.stderr.replace("│", " ").split())
    assert "Invalid value for --di-schedule" in said and "'every day' is neither" in said
    assert not list(tmp_path.glob("*.py"))  # nothing written
    assert fine.returncode == 0, fine.stderr


@pytest.mark.parametrize(
    ("option", "schedule", "accepted"),
    [
        ("--di-schedule", "none", True),  # run only when triggered
        ("--permits-schedule", "@once", True),
        ("--di-schedule", "0 0 * * * 30", True),  # croniter's seconds field
        ("--status-schedule", "none", False),  # the shipment DAG's timetable must be a cron
        ("--di-schedule", "99 * * * *", False),
        ("--di-schedule", "@annually", False),  # croniter knows it, Airflow does not
    ],
)
def test_schedules_airflow_takes_are_written_and_others_refused(
    conn: psycopg.Connection, db_url: str, tmp_path: Path, option: str, schedule: str,
    accepted: bool,
) -> None:  # fmt: skip
    define(conn, "orders", "sales")

    done = run(
        {"DATABASE_URL": db_url}, "airflow", "dags", "--out", str(tmp_path), option, schedule
    )

    assert done.returncode == (0 if accepted else 2), done.stderr
    if accepted:
        written = {
            "--di-schedule": "pgferry_di_sales.py",
            "--permits-schedule": "pgferry_permits.py",
        }
        literal = "None" if schedule == "none" else f'"{schedule}"'
        assert f"schedule={literal}," in (tmp_path / written[option]).read_text()


def test_airflow_finds_the_provider_through_its_entry_point() -> None:
    found = [
        e for e in entry_points(group="apache_airflow_provider") if e.value.startswith("harness")
    ]

    assert [e.load() for e in found] == [get_provider_info]
    info = get_provider_info()
    assert info["package-name"] == "pgferry"
    hook = info["connection-types"][0]["hook-class-name"]
    module, name = hook.rsplit(".", 1)
    source = Path(__file__).parents[2] / (module.replace(".", "/") + ".py")
    assert f"class {name}(" in source.read_text()
