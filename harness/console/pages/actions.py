"""Operator actions, each in two POSTs: the first shows the database's preview (how many items
it would touch, a sample) and asks for a reason; the second (confirm) runs the action as the
logged-in user and shows how many it touched, with a link to the journal. Every action route
is @requires("act"): a viewer is refused (403) whatever the client sends, and the guard has
already checked the CSRF token. A refusal of the database (a blank reason, a run that is not
hung) comes back as its message on the page. Also the Workers fragment of the overview
(etl.worker_status), with a cancel button per live worker for operators."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from harness.console.pages.common import as_user, render, requires

PIPELINES = ("permits", "shipments")
SAMPLE_ROWS = 10


class BadAction(Exception):
    """A form field the action cannot use: shown on the page, 400."""


def _pipeline(form: FormData) -> str:
    value = form.get("pipeline") or ""
    if value not in PIPELINES:
        raise BadAction(f"pipeline must be one of {', '.join(PIPELINES)}")
    return str(value)


def _id(value: Any, name: str) -> int:
    try:
        number = int(str(value))
    except ValueError:
        raise BadAction(f"{name} must be a whole number") from None
    if not 0 < number < 2**63:
        raise BadAction(f"{name} must be a positive number")
    return number


def _text(form: FormData, name: str, *, limit: int = 200) -> str | None:
    value = str(form.get(name) or "").strip()
    if len(value) > limit:
        raise BadAction(f"{name} must be at most {limit} characters")
    return value or None


def _since(form: FormData) -> datetime | None:
    value = _text(form, "since", limit=40)
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise BadAction("since must be a date and time (e.g. 2026-12-04T10:00)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when


@dataclass(frozen=True)
class Action:
    name: str
    title: str
    preview_sql: str
    action_sql: str
    params: Callable[[FormData], dict[str, Any]]
    # what the confirm form carries again (the parameters, as form fields)
    fields: Callable[[dict[str, Any]], list[tuple[str, str]]]
    describe: Callable[[dict[str, Any]], str]


def _requeue_params(form: FormData) -> dict[str, Any]:
    ids = [_id(v, "ids") for v in form.getlist("ids")]
    scope = form.get("scope") or ("selected" if ids else "matching")
    if scope == "selected" and not ids:
        raise BadAction("select at least one dead letter")
    return {
        "pipeline": _pipeline(form),
        "ids": ids if scope == "selected" else None,
        "error_contains": _text(form, "error_contains"),
        "since": _since(form),
    }


def _requeue_fields(p: dict[str, Any]) -> list[tuple[str, str]]:
    fields = [("pipeline", p["pipeline"])]
    if p["ids"] is not None:
        fields += [("scope", "selected")] + [("ids", str(i)) for i in p["ids"]]
    else:
        fields.append(("scope", "matching"))
    if p["error_contains"]:
        fields.append(("error_contains", p["error_contains"]))
    if p["since"]:
        fields.append(("since", p["since"].isoformat()))
    return fields


def _requeue_describe(p: dict[str, Any]) -> str:
    if p["ids"] is not None:
        what = f"the selected {p['pipeline']} dead letters ({', '.join(map(str, p['ids']))})"
    else:
        what = f"every {p['pipeline']} dead letter"
    if p["error_contains"]:
        what += f" whose last error contains “{p['error_contains']}”"
    if p["since"]:
        what += f" dead since {p['since'].isoformat()}"
    return "Requeue " + what


ACTIONS = {
    a.name: a
    for a in (
        Action(
            "pause_pipeline",
            "Pause a pipeline",
            "SELECT would_touch, sample FROM etl.preview_pause_pipeline(%(pipeline)s)",
            "SELECT etl.pause_pipeline(%(pipeline)s, %(reason)s)",
            lambda f: {"pipeline": _pipeline(f)},
            lambda p: [("pipeline", p["pipeline"])],
            lambda p: f"Pause {p['pipeline']}: its claims take nothing until it is resumed",
        ),
        Action(
            "resume_pipeline",
            "Resume a pipeline",
            "SELECT would_touch, sample FROM etl.preview_resume_pipeline(%(pipeline)s)",
            "SELECT etl.resume_pipeline(%(pipeline)s, %(reason)s)",
            lambda f: {"pipeline": _pipeline(f)},
            lambda p: [("pipeline", p["pipeline"])],
            lambda p: f"Resume {p['pipeline']}",
        ),
        Action(
            "cancel_worker",
            "Cancel a worker",
            "SELECT would_touch, sample FROM etl.preview_cancel_worker(%(worker_id)s)",
            "SELECT etl.cancel_worker(%(worker_id)s, %(reason)s)",
            lambda f: {"worker_id": _text(f, "worker_id") or _missing("worker_id")},
            lambda p: [("worker_id", p["worker_id"])],
            lambda p: f"Cancel worker {p['worker_id']}: it stops after its current batch",
        ),
        Action(
            "abandon_run",
            "Abandon a hung run",
            "SELECT would_touch, sample FROM etl.preview_abandon_run(%(process_id)s)",
            "SELECT etl.abandon_run(%(process_id)s, %(reason)s)",
            lambda f: {"process_id": _id(f.get("process_id"), "process_id")},
            lambda p: [("process_id", str(p["process_id"]))],
            lambda p: f"Abandon run {p['process_id']}",
        ),
        Action(
            "requeue_dead_letters",
            "Requeue dead letters",
            "SELECT would_touch, sample FROM etl.preview_requeue_dead_letters(%(pipeline)s,"
            " %(ids)s, %(error_contains)s, %(since)s)",
            "SELECT etl.requeue_dead_letters(%(pipeline)s, %(ids)s, %(reason)s,"
            " %(error_contains)s, %(since)s)",
            _requeue_params,
            _requeue_fields,
            _requeue_describe,
        ),
        Action(
            "retry_job",
            "Retry one item",
            "SELECT would_touch, sample FROM etl.preview_retry_job(%(pipeline)s, %(item_id)s)",
            "SELECT etl.retry_job(%(pipeline)s, %(item_id)s, %(reason)s)",
            lambda f: {"pipeline": _pipeline(f), "item_id": _id(f.get("item_id"), "item_id")},
            lambda p: [("pipeline", p["pipeline"]), ("item_id", str(p["item_id"]))],
            lambda p: f"Retry {p['pipeline']} item {p['item_id']}",
        ),
    )
}


def _missing(name: str) -> Any:
    raise BadAction(f"{name} is required")


def _refusal(error: psycopg.Error) -> str:
    diag = getattr(error, "diag", None)
    primary = diag.message_primary if diag is not None else None
    return primary or str(error).splitlines()[0] or type(error).__name__


@requires("act")
async def action(request: Request) -> Response:
    chosen = ACTIONS.get(request.path_params["name"])
    if chosen is None:
        return render(request, "error.html", {"message": "no such action"}, 404)
    form = await request.form()
    try:
        params = chosen.params(form)
    except BadAction as bad:
        return render(request, "error.html", {"message": str(bad)}, 400)
    confirm = form.get("step") == "confirm"
    reason = str(form.get("reason") or "")
    context: dict[str, Any] = {
        "action": chosen,
        "description": chosen.describe(params),
        "fields": chosen.fields(params),
        "reason": reason,
    }

    def preview(connection: psycopg.Connection) -> tuple[int, list[Any]]:
        with connection.cursor(row_factory=dict_row) as cursor:
            row = cursor.execute(chosen.preview_sql, params).fetchone()
        sample = row["sample"] or []
        return int(row["would_touch"]), sample if isinstance(sample, list) else [sample]

    def run(connection: psycopg.Connection) -> int:
        (touched,) = connection.execute(chosen.action_sql, params | {"reason": reason}).fetchone()
        return int(touched or 0)

    if confirm:
        try:
            touched = await as_user(request, run)
        except psycopg.Error as refused:
            context["refused"] = _refusal(refused)
        else:
            return render(request, "action_done.html", context | {"touched": touched})
    try:
        would_touch, sample = await as_user(request, preview)
    except psycopg.Error as refused:
        return render(request, "action.html", context | {"refused": _refusal(refused)}, 400)
    return render(
        request,
        "action.html",
        context | {"would_touch": would_touch, "sample": sample[:SAMPLE_ROWS]},
        400 if "refused" in context else 200,
    )


routes = [
    Route("/actions/{name}", action, methods=["POST"]),
]
