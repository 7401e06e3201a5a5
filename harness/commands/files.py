"""`harness files`: the file importer (seed 004): run it, see its files, requeue dead ones."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from harness import connections
from harness.commands.common import EXIT_PROBLEM, console, out, require_database, start_worker

files_app = typer.Typer(
    help="The file importer: files from FTP, SFTP, a folder or S3 into target tables.",
    no_args_is_help=True,
)

STATUS_SQL = """
SELECT s.name, count(f.file_id),
       count(*) FILTER (WHERE f.state = 'pending'), count(*) FILTER (WHERE f.state = 'claimed'),
       count(*) FILTER (WHERE f.state = 'imported'), count(*) FILTER (WHERE f.state = 'duplicate'),
       count(*) FILTER (WHERE f.state = 'dead'), max(f.imported_at)
  FROM files.source AS s LEFT JOIN files.file AS f ON f.source = s.name
 GROUP BY s.name ORDER BY s.name
"""
DEAD_SQL = """
SELECT file_id, source, path, step, error_class, error, attempts
  FROM files.file WHERE state = 'dead' ORDER BY file_id
"""


@files_app.command("run")
def run(
    source: Annotated[
        str | None,
        typer.Option(
            help=(
                "List only this source for new files (default: every source); files"
                " already listed are imported whatever their source."
            )
        ),
    ] = None,
    once: Annotated[
        bool, typer.Option("--once", help="One claim of files only, not until none is left.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List each source for new files, then import files until none is left to claim.

    Sources come from files.define_source, their URLs from PGFERRY_FILES_<NAME>_URL; raw copies
    go to FILES_BUCKET. Exit 1 when dead letters exist (harness files dead), 2 when a source's
    URL or target is missing or wrong (the other sources go on), 3 when a source could not be
    listed or files wait for a retry.
    """
    from harness.config import FilesSettings, load, worker_id
    from harness.files.service import FileImporterRun
    from harness.runtime.outcome import files_outcome

    settings = load(FilesSettings)
    url = require_database()
    with connections.connect(url, autocommit=True) as connection:
        importer = FileImporterRun(
            url,
            connection,
            settings,
            worker_id(),
            only=source,
            progress=lambda line: console.print(escape(line), highlight=False),
        )
        try:
            totals = importer.drain(once=once)
        finally:
            importer.close()
        outcome = files_outcome(
            connection,
            totals.outcomes["retry"],
            totals.outcomes["misconfigured"],
            importer.unlisted,
            importer.unconfigured,
        )
    if as_json:
        summary = {"listed": totals.listed, "outcomes": dict(totals.outcomes)}
        typer.echo(json.dumps({**summary, "unreachable": sorted(importer.unlisted)}))
    else:
        out.print(f"files: {totals.summary}", highlight=False)
    for line in outcome.lines:
        out.print(escape(line), highlight=False)
    if outcome.code:
        raise typer.Exit(outcome.code)


def run_files(
    loop: Annotated[
        bool,
        typer.Option("--loop", help="Keep running: list the sources every FILES_LIST_SECONDS."),
    ] = False,
) -> None:
    """The file importer in the worker (`harness run` with PGFERRY_PIPELINES=files).

    Exit 0 when every file due was imported, 1 when dead letters exist (listed), 2 on bad
    configuration, 3 when a source could not be listed, files wait for a retry, or the
    database could not be reached.
    """
    raise typer.Exit(start_worker(console, out, loop=loop, pipelines=["files"]))


@files_app.command("status")
def status() -> None:
    """Files per source and state. Exit 1 when there are dead letters."""
    with connections.connect(require_database(), autocommit=True) as connection:
        rows = connection.execute(STATUS_SQL).fetchall()
    table = Table(title="File importer")
    for column in (
        "source",
        "files",
        "pending",
        "claimed",
        "imported",
        "duplicate",
        "dead",
        "last import",
    ):
        table.add_column(column)
    for name, *counts, last in rows:
        table.add_row(name, *map(str, counts), f"{last:%Y-%m-%d %H:%M:%S}" if last else "-")
    out.print(table)
    if any(row[6] for row in rows):
        raise typer.Exit(EXIT_PROBLEM)


@files_app.command("dead")
def dead() -> None:
    """The dead letters: each file with the step it failed and why."""
    with connections.connect(require_database(), autocommit=True) as connection:
        rows = connection.execute(DEAD_SQL).fetchall()
    table = Table(title="Dead files")
    for column in ("file", "source", "path", "last step done", "class", "error", "attempts"):
        table.add_column(column)
    for file_id, name, path, step, error_class, error, attempts in rows:
        table.add_row(
            str(file_id),
            name,
            escape(path),
            step or "-",
            error_class or "-",
            escape(error or ""),
            str(attempts),
        )
    out.print(table)


@files_app.command("requeue")
def requeue(
    file_ids: Annotated[
        list[int] | None, typer.Argument(help="Dead files to requeue (default: all of them).")
    ] = None,
    source: Annotated[str | None, typer.Option(help="Only this source's dead files.")] = None,
) -> None:
    """Dead files back to pending, with fresh attempts; each goes on after its last step."""
    with connections.connect(require_database(), autocommit=True) as connection:
        count = connection.execute(
            "SELECT files.requeue_dead(%s, %s)", [file_ids or None, source]
        ).fetchone()[0]
    out.print(f"requeued {count} file(s)")
