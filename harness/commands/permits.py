"""`harness run permits` and `harness permits ...`: the permit pipeline."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import typer

from harness import connections
from harness.commands.common import EXIT_PROBLEM, console, out, require_database, start_worker

permits_app = typer.Typer(help="Operate the permit pipeline.", no_args_is_help=True)


def run_permits(
    loop: Annotated[
        bool, typer.Option("--loop", help="Keep running: wake on finished loader runs, poll.")
    ] = False,
) -> None:
    """Move staged permits of completed loader runs into the permit tables and S3.

    Exit 0 when every permit due was handled, 1 when dead letters exist (listed, whichever run
    made them), 2 on bad configuration, 3 when S3 or the database could not be reached and
    permits wait.
    """
    raise typer.Exit(start_worker(console, out, loop=loop, pipelines=["permits"]))


@permits_app.command("dead")
def permits_dead() -> None:
    """List dead letters: permits that failed for good, with their last error."""
    from harness.permits.store import PermitStore

    with connections.connect(require_database(), autocommit=True) as connection:
        dead = PermitStore(connection).dead_letters()
    for letter in dead:
        typer.echo(
            f"{letter.staged_permit_id}\tprocess {letter.process_id}\tpermit"
            f" {letter.permit_number} gen {letter.permit_generation}\tattempts {letter.attempts}"
            f"\t{letter.dead_at:%Y-%m-%d %H:%M:%S}\t{letter.last_error}"
        )
    out.print(f"{len(dead)} dead letter(s)")


@permits_app.command("requeue")
def permits_requeue(
    ids: Annotated[list[int] | None, typer.Argument(help="Staged row ids (see `dead`).")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Requeue every dead letter.")] = False,
) -> None:
    """Put dead letters back in the queue with a fresh attempt count."""
    from harness.permits.store import PermitStore

    if not ids and not all_:
        raise typer.BadParameter("name staged row ids (see `harness permits dead`), or pass --all")
    with connections.connect(require_database(), autocommit=True) as connection:
        requeued = PermitStore(connection).requeue_dead(None if all_ else ids)
    out.print(f"requeued {len(requeued)} permit(s): {requeued}", markup=False)


@permits_app.command("reconcile")
def permits_reconcile(
    delete: Annotated[
        bool, typer.Option("--delete", help="Delete orphaned objects after listing them.")
    ] = False,
    older_than_minutes: Annotated[
        float,
        typer.Option("--older-than", help="Delete only orphans at least this many minutes old."),
    ] = 60,
) -> None:
    """Compare S3 with permit.document: orphaned objects, missing objects, size mismatches.

    Exit 1 when anything is out of place (after --delete: when anything but deleted orphans is).
    """
    from harness.commands.common import check_revision, require_database_url
    from harness.config import collect
    from harness.permits.reconcile import reconcile
    from harness.permits.service import make_uploader

    url, uploader = collect(require_database_url, make_uploader)
    check_revision(url)
    with connections.connect(url, autocommit=True) as connection:
        result = reconcile(
            connection,
            uploader.client,
            uploader,
            delete=delete,
            min_age=timedelta(minutes=older_than_minutes),
        )
    for key in result.orphans:
        deleted = " (deleted)" if key in result.deleted else ""
        out.print(f"orphan: s3://{uploader.bucket}/{key}{deleted}", markup=False)
    for key in result.missing:
        out.print(f"missing: s3://{uploader.bucket}/{key} (permit.document has it)", markup=False)
    for key in result.size_mismatch:
        out.print(f"size mismatch: s3://{uploader.bucket}/{key}", markup=False)
    out.print(f"{result.objects} object(s), {result.documents} document(s)")
    if result.missing or result.size_mismatch or set(result.orphans) - set(result.deleted):
        raise typer.Exit(EXIT_PROBLEM)
