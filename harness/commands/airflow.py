"""`harness airflow dags`: DAG files for Apache Airflow 3 from the DI metadata."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from harness import connections
from harness.commands.common import out, require_database

airflow_app = typer.Typer(
    help="Run pgferry from Apache Airflow 3 (operators in harness.airflow, the `airflow` extra).",
    no_args_is_help=True,
)


@airflow_app.command("dags")
def dags(
    folder: Annotated[
        Path,
        typer.Option(
            "--out", help="The folder to write into: Airflow's DAG folder, or one it reads."
        ),
    ],
    conn_id: Annotated[
        str, typer.Option("--conn-id", help="The Airflow connection to the pgferry database.")
    ] = "pgferry_default",
    di_schedule: Annotated[
        str,
        typer.Option(
            "--di-schedule",
            help="Schedule of the DI group DAGs: cron, a preset (@daily...), or none.",
        ),
    ] = "@daily",
    permits_schedule: Annotated[
        str, typer.Option("--permits-schedule", help="How often the permit DAG waits for a run.")
    ] = "*/15 * * * *",
    status_schedule: Annotated[
        str,
        typer.Option(
            "--status-schedule",
            help="The shipment DAG's runs besides those due jobs start (delivery statuses).",
        ),
    ] = "*/30 * * * *",
    retries: Annotated[
        int,
        typer.Option(
            "--retries",
            min=0,
            help="Retries of a task that failed for a cause"
            " that may pass (exit 3: something unreachable).",
        ),
    ] = 2,
    poll_seconds: Annotated[
        float,
        typer.Option(
            "--poll-seconds", min=1, help="How often the permit DAG's sensor looks at etl.process."
        ),
    ] = 30.0,
) -> None:
    """Write the DAG files: one per DI process group (etl.di_process), the permit DAG (a
    deferrable sensor for finished loader runs) and the event-driven shipment DAG. Airflow
    parses them without any database; run this again after changing DI processes."""
    from harness.airflow.dags import DagOptions, render, schedule_problem, write
    from harness.di.metadata import load_processes

    if folder.exists() and not folder.is_dir():
        raise typer.BadParameter(f"{folder} is a file, not a folder", param_hint="--out")
    for option, schedule, any_timetable in (
        ("--di-schedule", di_schedule, True),
        ("--permits-schedule", permits_schedule, True),
        ("--status-schedule", status_schedule, False),  # a cron timetable beside the asset
    ):
        if problem := schedule_problem(schedule, any_timetable):
            raise typer.BadParameter(problem, param_hint=option)
    with connections.connect(require_database(), autocommit=True) as connection:
        processes = load_processes(connection)
    options = DagOptions(
        conn_id, di_schedule, permits_schedule, status_schedule, retries, poll_seconds
    )
    table = Table(title=f"DAG files in {folder}")
    table.add_column("file")
    table.add_column("")
    for name, action in write(folder, render(processes, options)):
        table.add_row(name, action)
    out.print(table)
