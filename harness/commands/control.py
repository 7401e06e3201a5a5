"""`harness pause` and `harness resume`: stop and restart a pipeline's claims, with a reason.

Both call the SQL actions the console calls (etl.pause_pipeline, etl.resume_pipeline), as
DATABASE_URL's user: the database records that login as the actor in etl.operator_action, and
refuses a user who is not a member of pgferry_operator. A pause is honoured by the claims
themselves (permit.claim_batch, delivery.claim_jobs), so every running worker obeys at its next
claim without a restart; what it already claimed finishes.
"""

from __future__ import annotations

from typing import Annotated

import typer

from harness import connections
from harness.commands.common import out, require_database

PIPELINE = Annotated[str, typer.Argument(help="permits or shipments.")]
REASON = Annotated[
    str, typer.Option("--reason", help="Why (required; journaled in etl.operator_action).")
]


def pause(pipeline: PIPELINE, reason: REASON) -> None:
    """Pause a pipeline: its workers claim nothing until `harness resume` (no restart)."""
    changed = _act("etl.pause_pipeline", pipeline, reason)
    out.print(f"{pipeline}: paused" if changed else f"{pipeline}: was paused already", markup=False)


def resume(pipeline: PIPELINE, reason: REASON) -> None:
    """Resume a paused pipeline: its workers claim again at once."""
    changed = _act("etl.resume_pipeline", pipeline, reason)
    out.print(f"{pipeline}: resumed" if changed else f"{pipeline}: was not paused", markup=False)


def _act(function: str, pipeline: str, reason: str) -> int:
    if not reason.strip():
        raise typer.BadParameter("say why: --reason TEXT (it is journaled)", param_hint="--reason")
    with connections.connect(require_database(), autocommit=True) as connection:
        return connection.execute(f"SELECT {function}(%s, %s)", [pipeline, reason]).fetchone()[0]
