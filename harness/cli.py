"""The `harness` command line.

Exit codes, for schedulers: 0 success, 1 the job ran and found a problem (drift, failed items),
2 configuration or usage error.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from harness import drift, history, migrate
from harness.paths import SqlLayout, default_layout
from harness.settings import ConfigurationError, database_url, redacted

EXIT_PROBLEM = 1
EXIT_CONFIG = 2

app = typer.Typer(
    help="pgferry harness: deploy the SQL package and run the pipelines.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(
    help="Deploy, roll back and check the SQL package (Alembic, DATABASE_URL).",
    no_args_is_help=True,
)
app.add_typer(db_app, name="db")
console = Console(stderr=True)

RootOption = Annotated[
    Path | None,
    typer.Option(
        "--root", help="Project root holding alembic.ini and db/ (default: this checkout)."
    ),
]


def _layout(root: Path | None) -> SqlLayout:
    return SqlLayout(root.resolve()) if root else default_layout()


def _database_url() -> str:
    try:
        return database_url()
    except ConfigurationError as error:
        console.print(f"[red]configuration error:[/] {error}")
        raise typer.Exit(EXIT_CONFIG) from error


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
    sql: Annotated[
        bool, typer.Option("--sql", help="Print the SQL script for review instead of running it.")
    ] = False,
    root: RootOption = None,
) -> None:
    """Upgrade the database to REVISION (default: head)."""
    layout = _layout(root)
    if sql:
        typer.echo(migrate.offline_script(revision, layout), nl=False)
        return
    url = _database_url()
    migrate.upgrade(url, revision, layout)
    console.print(f"upgraded {redacted(url)} to {migrate.current_revision(url)}")


@db_app.command("downgrade")
def db_downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision: an id, -1, or base.")],
    root: RootOption = None,
) -> None:
    """Downgrade the database to REVISION (`base` removes every object of ours)."""
    url = _database_url()
    migrate.downgrade(url, revision, _layout(root))
    console.print(f"downgraded {redacted(url)} to {migrate.current_revision(url) or 'base'}")


@db_app.command("check")
def db_check(root: RootOption = None) -> None:
    """Report drift between deployed routines/triggers and the current definition files.

    Exits 1 when the database is behind head or any object differs, is missing or unexpected.
    """
    layout = _layout(root)
    url = _database_url()
    current, head = migrate.current_revision(url), migrate.head_revision(layout)
    report = drift.check(url, layout)
    findings = report.lines()
    if current != head:
        findings.insert(0, f"revision: database at {current or 'base'}, head is {head}")
    for line in findings:
        console.print(line, markup=False, highlight=False)
    if findings:
        raise typer.Exit(EXIT_PROBLEM)
    console.print(f"no drift: {redacted(url)} is at {head} and matches the definition files")


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
    layout = _layout(root)
    revision = history.freeze(layout, message, with_schema=schema)
    if revision is None:
        console.print("nothing to freeze: every definition file matches its latest frozen copy")
        return
    console.print(f"revision {revision} written to {layout.history / revision}")
    if schema:
        console.print("write the schema DDL, then run `harness db seal`")


@db_app.command("seal")
def db_seal(root: RootOption = None) -> None:
    """Record checksums of new history files; refuse if sealed history was edited."""
    try:
        added = history.seal(_layout(root))
    except history.HistoryError as error:
        console.print(f"[red]{error}[/]", markup=True, highlight=False)
        raise typer.Exit(EXIT_PROBLEM) from error
    console.print(f"sealed {len(added)} new file(s)")


@app.command("extract")
def extract(
    tables: Annotated[list[str], typer.Argument(help="Tables to export, e.g. stg.client.")],
    to: Annotated[
        str, typer.Option("--to", help="A folder, or s3://bucket/prefix (S3_ENDPOINT_URL, AWS_*).")
    ],
    obfuscate: Annotated[
        bool,
        typer.Option(
            "--obfuscate/--plain",
            help="Mask the columns listed in etl.mask_rule (default) or export as is.",
        ),
    ] = True,
) -> None:
    """Export tables as gzipped CSV for development data, sensitive columns masked in SQL.

    The hash salt comes from PGFERRY_MASK_SALT; keep it secret and stable so hashes stay joinable.
    """
    from harness import extract as extracting
    from harness.s3 import S3Location

    url = _database_url()
    salt = os.environ.get("PGFERRY_MASK_SALT", "")
    if obfuscate and not salt:
        console.print("[yellow]warning:[/] PGFERRY_MASK_SALT is not set; hashes are unsalted")
    if to.startswith("s3://"):
        uploaded = extracting.extract_to_s3(
            url,
            tables,
            S3Location.parse(to),
            endpoint_url=os.environ.get("S3_ENDPOINT_URL"),
            obfuscate=obfuscate,
            salt=salt,
        )
        for table, key in uploaded:
            console.print(f"{table.table}: {table.rows} rows -> {to.split('/')[2]}/{key}")
        return
    report = lambda t: console.print(f"{t.table}: {t.rows} rows -> {t.path}")  # noqa: E731
    extracting.extract_tables(
        url, tables, Path(to), obfuscate=obfuscate, salt=salt, on_table=report
    )


@app.command("demo")
def demo() -> None:
    """Run the whole system on embedded defaults (embedded PostgreSQL, nothing to configure)."""
    from harness.demo import run_demo

    raise typer.Exit(run_demo(console))
