"""`harness di`: the data-integration processes of the migration hub (seed 001)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import psycopg
import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from harness import connections
from harness.commands.common import EXIT_PROBLEM, console, out, require_database

if TYPE_CHECKING:
    from harness.di.metadata import DiProcess
    from harness.di.run import DiRunResult

di_app = typer.Typer(
    help="Data-integration processes: source tables through the object-storage layer into STG.",
    no_args_is_help=True,
)

STATUS_SQL = """
SELECT d.name, r.process_id, r.status, r.started_at, r.ended_at, r.window_from, r.window_to,
       r.rows_loaded, r.message,
       (SELECT max(s.window_to) FROM etl.process AS s
         WHERE s.pipeline = d.name AND s.status = 'succeeded') AS covered_to
  FROM etl.di_process AS d
  LEFT JOIN LATERAL (SELECT * FROM etl.process AS p WHERE p.pipeline = d.name
                      ORDER BY p.process_id DESC LIMIT 1) AS r ON true
 ORDER BY d.name
"""


@di_app.command("list")
def list_processes() -> None:
    """The declared DI processes: source, CDC, target, key, group and dependencies."""
    from harness.di.metadata import load_processes

    with connections.connect(require_database(), autocommit=True) as connection:
        processes = load_processes(connection)
    table = Table(title="DI processes")
    for column in ("process", "group", "source", "reads", "CDC", "into", "key", "after"):
        table.add_column(column)
    for p in processes:
        cdc = "full reload" if p.full_reload else f"{p.cdc_column}, overlap {p.window_overlap}"
        table.add_row(
            p.name,
            p.process_group,
            p.source or "-",
            p.source_table or "(query)",
            cdc + (f", soft deletes {p.deleted_column}" if p.deleted_column else ""),
            p.target_table,
            ", ".join(p.key_columns) or "(primary key)",
            ", ".join(p.depends_on) or "-",
        )
    out.print(table)


@di_app.command("run")
def run(
    names: Annotated[
        list[str] | None, typer.Argument(help="Processes to run (default: all).")
    ] = None,
    group: Annotated[
        str | None,
        typer.Option("--group", "--pipeline", help="Run every process of this group."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Run DI processes once each, in dependency order, up to DI_PARALLEL at once.

    Each run reads its window from the source (PGFERRY_SOURCE_<NAME>_URL), keeps it in the
    layer (DI_BUCKET, DI_PREFIX, DI_ENDPOINT_URL) and merges it into its STG table. Exit 1 when
    a run failed or rows could not be merged (etl.error_log has them); a run refused because the
    same process is still running is not a failure.
    """
    from harness.config import DiSettings, first_line, load, scrub
    from harness.di.metadata import load_processes
    from harness.di.run import DiRunResult, layer_from, run_process
    from harness.di.schedule import run_in_waves, select

    url = require_database()
    settings = load(DiSettings)
    layer = layer_from(settings)
    with connections.connect(url, autocommit=True) as connection:
        chosen = select(load_processes(connection), names or [], group)

    with _progress_bar() as bar:
        runs = bar.add_task("DI runs", total=len(chosen))

        def said(process: str, step: str) -> None:
            bar.console.print(f"{escape(process)}: {escape(step)}", highlight=False)

        def run_one(process: DiProcess) -> DiRunResult:
            try:
                with connections.connect(url, autocommit=True) as target:
                    result = run_process(target, process, layer, progress=said)
            except psycopg.Error as error:  # the target itself: this process's result only
                result = DiRunResult(process.name, "failed", message=scrub(first_line(error)))
            bar.advance(runs)
            return result

        results = run_in_waves(chosen, settings.parallel, run_one)
    if as_json:
        typer.echo(json.dumps([r.as_dict() for r in results], indent=2))
    else:
        out.print(_results_table(results))
    if any(r.status == "failed" or (r.merged and r.merged.failed) for r in results):
        raise typer.Exit(EXIT_PROBLEM)


@di_app.command("status")
def status() -> None:
    """The last run of every DI process, and how far its source is covered."""
    with connections.connect(require_database(), autocommit=True) as connection:
        rows = connection.execute(STATUS_SQL).fetchall()
    table = Table(title="DI status")
    for column in ("process", "last run", "status", "window", "rows", "covered to", "message"):
        table.add_column(column)
    for name, pid, state, _, _, start, end, rows_loaded, message, covered in rows:
        table.add_row(
            name,
            str(pid or "-"),
            state or "never run",
            f"{start:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M}" if start else "-",
            str(rows_loaded if rows_loaded is not None else "-"),
            f"{covered:%Y-%m-%d %H:%M:%S}" if covered else "-",
            escape(message or ""),
        )
    out.print(table)
    if any(row[2] == "failed" for row in rows):
        raise typer.Exit(EXIT_PROBLEM)


def _progress_bar() -> Progress:
    """Processes done of those chosen, on stderr; each step's line printed above it."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


def _results_table(results: list[DiRunResult]) -> Table:
    table = Table(title="DI runs")
    for column in (
        "process",
        "run",
        "status",
        "read",
        "inserted",
        "updated",
        "unchanged",
        "deleted",
        "failed",
        "seconds",
        "layer object",
    ):
        table.add_column(column)
    for r in results:
        m = r.merged
        counts = [m.inserted, m.updated, m.unchanged, m.deleted, m.failed] if m else [""] * 5
        table.add_row(
            r.name,
            str(r.process_id or "-"),
            r.status + (f": {r.message}" if r.message else ""),
            str(r.rows),
            *map(str, counts),
            f"{r.seconds:.1f}",
            r.key or "-",
        )
    return table
