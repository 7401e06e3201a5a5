"""Failures: etl.error_log through etl.failures (filtered by object, SQLSTATE, field, run and
UTC days, keyset-paged on error_id, newest first), grouped by cause above it through
etl.failure_causes; and the dead letters of both pipelines through etl.dead_letters, each paged
by keyset on its item id. Read-only, queried as the logged-in user: the row keys and payloads
are what etl.log_error stored, secrets already redacted."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from urllib.parse import urlencode

import psycopg
from psycopg.rows import class_row
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from harness.console.pages.common import as_user, render, requires
from harness.console.paging import Page, day_range, keyset_page
from harness.console.params import BadFilter, query_date, query_id

DEAD_LETTER_PIPELINES = ("permits", "shipments")

FAILURES_SQL = """
SELECT error_id, logged_at, logged_by, object_name, table_name, field, sqlstate, message, detail,
       hint, row_key, row_payload, process_id
  FROM etl.failures(p_object => %(object)s, p_sqlstate => %(sqlstate)s, p_field => %(field)s,
                    p_process_id => %(process)s, p_from => %(from)s, p_to => %(to)s,
                    p_after => %(before)s, p_limit => %(limit)s)
"""

CAUSES_SQL = """
SELECT object_name, sqlstate, field, errors, first_at, last_at, last_message
  FROM etl.failure_causes(p_from => %(from)s, p_to => %(to)s)
"""

DEAD_LETTERS_SQL = """
SELECT item_id, item_key, state, attempts, last_error, dead_at, process_id
  FROM etl.dead_letters(%(pipeline)s, p_after => %(after)s, p_limit => %(limit)s)
"""

_SQLSTATE = re.compile(r"^[0-9A-Z]{5}$")
_FIELD = re.compile(r"^[A-Za-z0-9_]{1,63}$")
_PRINTABLE = re.compile(r"^[^\x00-\x1f\x7f]{1,200}$")


@dataclass(frozen=True)
class FailureFilter:
    object_name: str | None = None
    sqlstate: str | None = None
    field: str | None = None
    process_id: int | None = None
    logged_from: date | None = None  # inclusive, UTC day
    logged_to: date | None = None  # inclusive, UTC day

    def params(self) -> dict[str, str]:
        """The filter as the page's query parameters (what a link keeps)."""
        kept = {
            "object": self.object_name or "",
            "sqlstate": self.sqlstate or "",
            "field": self.field or "",
            "process": str(self.process_id) if self.process_id is not None else "",
            "from": self.logged_from.isoformat() if self.logged_from else "",
            "to": self.logged_to.isoformat() if self.logged_to else "",
        }
        return {k: v for k, v in kept.items() if v}

    def range(self) -> dict[str, datetime | None]:
        return day_range(self.logged_from, self.logged_to)


@dataclass(frozen=True)
class Failure:
    error_id: int
    logged_at: datetime
    logged_by: str | None
    object_name: str
    table_name: str | None
    field: str | None
    sqlstate: str
    message: str
    detail: str | None
    hint: str | None
    row_key: Any
    row_payload: Any
    process_id: int | None


@dataclass(frozen=True)
class Cause:
    object_name: str
    sqlstate: str
    field: str | None
    errors: int
    first_at: datetime
    last_at: datetime
    last_message: str | None


@dataclass(frozen=True)
class DeadLetter:
    item_id: int
    item_key: str
    state: str
    attempts: int | None
    last_error: str | None
    dead_at: datetime | None
    process_id: int | None


def _text(value: str | None, name: str, pattern: re.Pattern[str], what: str) -> str | None:
    if not value:
        return None
    if not pattern.match(value):
        raise BadFilter(f"{name} must be {what}")
    return value


def failure_filter(request: Request) -> FailureFilter:
    q = request.query_params
    where = FailureFilter(
        object_name=_text(q.get("object"), "object", _PRINTABLE, "an object name"),
        sqlstate=_text(
            (q.get("sqlstate") or "").upper() or None,
            "SQLSTATE",
            _SQLSTATE,
            "five letters or digits (e.g. 22023)",
        ),
        field=_text(q.get("field"), "field", _FIELD, "a column name (letters, digits, _)"),
        process_id=query_id(q.get("process"), "process"),
        logged_from=query_date(q.get("from"), "from"),
        logged_to=query_date(q.get("to"), "to"),
    )
    if where.logged_from and where.logged_to and where.logged_from > where.logged_to:
        raise BadFilter("from must not be after to")
    return where


def list_failures(
    connection: psycopg.Connection, where: FailureFilter, *, limit: int, before: int | None
) -> Page:
    params = {
        "object": where.object_name,
        "sqlstate": where.sqlstate,
        "field": where.field,
        "process": where.process_id,
        **where.range(),
        "before": before,
    }
    return keyset_page(connection, FAILURES_SQL, params, Failure, limit=limit, key="error_id")


def list_causes(connection: psycopg.Connection, where: FailureFilter) -> list[Cause]:
    with connection.cursor(row_factory=class_row(Cause)) as cursor:
        return cursor.execute(CAUSES_SQL, where.range()).fetchall()


def list_dead_letters(
    connection: psycopg.Connection, pipeline: str, *, limit: int, after: int | None
) -> Page:
    params = {"pipeline": pipeline, "after": after}
    return keyset_page(connection, DEAD_LETTERS_SQL, params, DeadLetter, limit=limit, key="item_id")


@requires("read")
async def failures(request: Request) -> Response:
    try:
        where = failure_filter(request)
        before = query_id(request.query_params.get("before"), "before")
    except BadFilter as bad:
        return render(request, "error.html", {"message": str(bad)}, 400)
    limit = request.app.state.settings.page_size

    def read(connection: psycopg.Connection) -> tuple[Page, list[Cause]]:
        return (
            list_failures(connection, where, limit=limit, before=before),
            list_causes(connection, where),
        )

    page, causes = await as_user(request, read)
    kept = where.params()
    days = {k: v for k, v in kept.items() if k in ("from", "to")}

    def cause_link(cause: Cause) -> str:
        chosen = {"object": cause.object_name, "sqlstate": cause.sqlstate}
        if cause.field:
            chosen["field"] = cause.field
        return "/failures?" + urlencode(chosen | days)

    return render(
        request,
        "failures.html",
        {
            "tab": "errors",
            "page": page,
            "where": where,
            "causes": [(cause, cause_link(cause)) for cause in causes],
            "objects": sorted({c.object_name for c in causes}),
            "sqlstates": sorted({c.sqlstate for c in causes}),
            "fields": sorted({c.field for c in causes if c.field}),
            "filtered": bool(kept),
            "older_link": (
                "/failures?" + urlencode(kept | {"before": page.next_key})
                if page.next_key is not None
                else None
            ),
            "newest_link": "/failures?" + urlencode(kept) if before is not None else None,
        },
    )


@requires("read")
async def dead_letters(request: Request) -> Response:
    q = request.query_params
    try:
        after = {p: query_id(q.get(f"{p}_after"), f"{p}_after") for p in DEAD_LETTER_PIPELINES}
    except BadFilter as bad:
        return render(request, "error.html", {"message": str(bad)}, 400)
    limit = request.app.state.settings.page_size

    def read(connection: psycopg.Connection) -> dict[str, Page]:
        return {
            p: list_dead_letters(connection, p, limit=limit, after=after[p])
            for p in DEAD_LETTER_PIPELINES
        }

    pages = await as_user(request, read)
    kept = {f"{p}_after": str(a) for p, a in after.items() if a is not None}

    def links(pipeline: str) -> dict[str, str | None]:
        key = f"{pipeline}_after"
        others = {k: v for k, v in kept.items() if k != key}
        nxt = pages[pipeline].next_key
        return {
            "next": (
                "/failures/dead-letters?" + urlencode(others | {key: nxt})
                if nxt is not None
                else None
            ),
            "first": (
                "/failures/dead-letters?" + urlencode(others)
                if after[pipeline] is not None
                else None
            ),
        }

    return render(
        request,
        "failures.html",
        {
            "tab": "dead",
            "sections": [(p, pages[p], links(p)) for p in DEAD_LETTER_PIPELINES],
        },
    )


routes = [
    Route("/failures", failures, methods=["GET"]),
    Route("/failures/dead-letters", dead_letters, methods=["GET"]),
]
