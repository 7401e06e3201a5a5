"""`harness db`: deploy, roll back and check the SQL package."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from harness.commands.common import EXIT_PROBLEM, console, out, require_database_url
from harness.config import redacted
from harness.deploy.paths import SqlLayout, default_layout

db_app = typer.Typer(
    help="Deploy, roll back and check the SQL package (Alembic, DATABASE_URL).",
    no_args_is_help=True,
)

RootOption = Annotated[
    Path | None,
    typer.Option(
        "--root", help="Project root holding alembic.ini and db/ (default: this checkout)."
    ),
]


def _layout(root: Path | None) -> SqlLayout:
    return SqlLayout(root.resolve()) if root else default_layout()


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
    sql: Annotated[
        bool, typer.Option("--sql", help="Print the SQL script for review instead of running it.")
    ] = False,
    root: RootOption = None,
) -> None:
    """Upgrade the database to REVISION (default: head)."""
    from harness.deploy import migrate

    layout = _layout(root)
    if sql:
        typer.echo(migrate.offline_script(revision, layout), nl=False)
        return
    url = require_database_url()
    migrate.upgrade(url, revision, layout)
    out.print(f"upgraded {redacted(url)} to {migrate.current_revision(url)}", markup=False)


# -1 is a revision here, not an option: unknown options are handed to REVISION and checked
@db_app.command("downgrade", context_settings={"ignore_unknown_options": True})
def db_downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision: an id, -1, or base.")],
    root: RootOption = None,
) -> None:
    """Downgrade the database to REVISION (`base` removes every object of ours).

    A relative step (`harness db downgrade -1`) goes back that many revisions."""
    from harness.deploy import migrate

    if revision.startswith("-") and not revision[1:].isdigit():
        raise typer.BadParameter(
            f"no such option {revision}: a revision is an id, -N or base", param_hint="REVISION"
        )
    url = require_database_url()
    migrate.downgrade(url, revision, _layout(root))
    current = migrate.current_revision(url) or "base"
    out.print(f"downgraded {redacted(url)} to {current}", markup=False)


@db_app.command("check")
def db_check(root: RootOption = None) -> None:
    """Report drift between deployed routines/triggers and the current definition files.

    Exits 1 when the database is behind head or any object differs, is missing or unexpected.
    """
    from harness.deploy import drift, migrate

    layout = _layout(root)
    url = require_database_url()
    current, head = migrate.current_revision(url), migrate.head_revision(layout)
    report = drift.check(url, layout)
    findings = report.lines()
    if current != head:
        findings.insert(0, f"revision: database at {current or 'base'}, head is {head}")
    for line in findings:
        out.print(line, markup=False, highlight=False)
    if findings:
        raise typer.Exit(EXIT_PROBLEM)
    out.print(
        f"no drift: {redacted(url)} is at {head} and matches the definition files", markup=False
    )


@db_app.command("freeze")
def db_freeze(
    message: Annotated[str, typer.Option("--message", "-m", help="What the revision does.")],
    schema: Annotated[
        bool,
        typer.Option("--schema", help="Also create schema.up.sql/schema.down.sql for table DDL."),
    ] = False,
    root: RootOption = None,
) -> None:
    """Freeze changed definition files into a new revision (copies, never links)."""
    from harness.deploy import history

    layout = _layout(root)
    revision = history.freeze(layout, message, with_schema=schema)
    if revision is None:
        out.print("nothing to freeze: every definition file matches its latest frozen copy")
        return
    out.print(f"revision {revision} written to {layout.history / revision}", markup=False)
    if schema:
        out.print("write the schema DDL, then run `harness db seal`")


@db_app.command("seal")
def db_seal(root: RootOption = None) -> None:
    """Record checksums of new history files; refuse if sealed history was edited."""
    from harness.deploy import history

    try:
        added = history.seal(_layout(root))
    except history.HistoryError as error:
        console.print(f"[red]{error}[/]", markup=True, highlight=False)
        raise typer.Exit(EXIT_PROBLEM) from error
    out.print(f"sealed {len(added)} new file(s)")
