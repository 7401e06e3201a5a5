"""The `harness` command line.

Exit codes, for schedulers: 0 success, 1 the job ran and found a problem (drift, failed items),
2 configuration or usage error.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console

from harness import drift, history, logs, migrate
from harness.paths import SqlLayout, default_layout
from harness.settings import ConfigurationError, database_url, redacted

T = TypeVar("T")
EXIT_PROBLEM = 1
EXIT_CONFIG = 2

app = typer.Typer(
    help="pgferry harness: deploy the SQL package and run the pipelines.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
run_app = typer.Typer(
    help="Run the pipelines' consumers (once, or as a long-running worker with --loop).",
    no_args_is_help=True,
)
permits_app = typer.Typer(help="Operate the permit pipeline.", no_args_is_help=True)
db_app = typer.Typer(
    help="Deploy, roll back and check the SQL package (Alembic, DATABASE_URL).",
    no_args_is_help=True,
)
app.add_typer(db_app, name="db")
app.add_typer(run_app, name="run")
app.add_typer(permits_app, name="permits")
console = Console(stderr=True, soft_wrap=True)

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


def _configured(build: Callable[[], T]) -> T:
    try:
        return build()
    except ConfigurationError as error:
        console.print(f"[red]configuration error:[/] {error}")
        raise typer.Exit(EXIT_CONFIG) from error


@run_app.command("permits")
def run_permits(
    loop: Annotated[
        bool, typer.Option("--loop", help="Keep running: wake on finished loader runs, poll.")
    ] = False,
) -> None:
    """Move staged permits of completed loader runs into the permit tables and S3.

    Exit 0 when every permit was handled, 1 when dead letters remain (listed), 2 on bad
    configuration.
    """
    from harness.permits.service import run_permits as run

    url = _database_url()
    logs.configure()
    raise typer.Exit(_configured(lambda: run(url, console, loop=loop)))


@permits_app.command("dead")
def permits_dead() -> None:
    """List dead letters: permits that failed for good, with their last error."""
    import psycopg

    from harness.permits.store import PermitStore

    with psycopg.connect(_database_url(), autocommit=True) as connection:
        dead = PermitStore(connection).dead_letters()
    for letter in dead:
        typer.echo(
            f"{letter.staged_permit_id}\tprocess {letter.process_id}\tpermit"
            f" {letter.permit_number} gen {letter.permit_generation}\tattempts {letter.attempts}"
            f"\t{letter.dead_at:%Y-%m-%d %H:%M:%S}\t{letter.last_error}"
        )
    console.print(f"{len(dead)} dead letter(s)")


@permits_app.command("requeue")
def permits_requeue(
    ids: Annotated[list[int] | None, typer.Argument(help="Staged row ids (see `dead`).")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Requeue every dead letter.")] = False,
) -> None:
    """Put dead letters back in the queue with a fresh attempt count."""
    import psycopg

    from harness.permits.store import PermitStore

    if not ids and not all_:
        console.print("name staged row ids, or pass --all")
        raise typer.Exit(EXIT_CONFIG)
    with psycopg.connect(_database_url(), autocommit=True) as connection:
        requeued = PermitStore(connection).requeue_dead(None if all_ else ids)
    console.print(f"requeued {len(requeued)} permit(s): {requeued}")


@permits_app.command("reconcile")
def permits_reconcile(
    delete: Annotated[
        bool, typer.Option("--delete", help="Delete orphaned objects after listing them.")
    ] = False,
) -> None:
    """Compare S3 with permit.document: orphaned objects, missing objects, size mismatches.

    Exit 1 when anything is out of place (after --delete: when anything but deleted orphans is).
    """
    import psycopg

    from harness.permits.reconcile import reconcile
    from harness.permits.service import make_uploader

    uploader = _configured(make_uploader)
    with psycopg.connect(_database_url(), autocommit=True) as connection:
        result = reconcile(connection, uploader.client, uploader, delete=delete)
    for key in result.orphans:
        console.print(f"orphan: s3://{uploader.bucket}/{key}" + (" (deleted)" if delete else ""))
    for key in result.missing:
        console.print(f"missing: s3://{uploader.bucket}/{key} (permit.document has it)")
    for key in result.size_mismatch:
        console.print(f"size mismatch: s3://{uploader.bucket}/{key}")
    console.print(f"{result.objects} object(s), {result.documents} document(s)")
    if result.missing or result.size_mismatch or (result.orphans and not delete):
        raise typer.Exit(EXIT_PROBLEM)


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
