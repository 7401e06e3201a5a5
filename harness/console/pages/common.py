"""What every page shares: rendering with the session's CSRF token, the access level a route
requires, and running a query as the logged-in user (in a worker thread: psycopg blocks)."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import psycopg
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from harness.console.auth import Session

T = TypeVar("T")
Endpoint = Callable[[Request], Awaitable[Response]]


def session_of(request: Request) -> Session:
    """The session the guard attached (every route but /login and /static has one)."""
    return request.state.session


def requires(level: str) -> Callable[[Endpoint], Endpoint]:
    """Refuse (403) a session whose console role does not reach ``level`` ('read', 'act')."""

    def decorate(endpoint: Endpoint) -> Endpoint:
        @functools.wraps(endpoint)
        async def guarded(request: Request) -> Response:
            session = session_of(request)
            if not session.allows(level):
                return render(
                    request, "error.html", {"message": f"{session.login} may not {level} here"}, 403
                )
            return await endpoint(request)

        guarded.required_level = level  # type: ignore[attr-defined]
        return guarded

    return decorate


async def as_user(request: Request, query: Callable[[psycopg.Connection], T]) -> T:
    """``query`` on one of the session's own connections (opened as the logged-in role)."""
    connections = session_of(request).connections

    def run() -> T:
        with connections.connection() as connection:
            return query(connection)

    return await run_in_threadpool(run)


def render(request: Request, template: str, context: dict[str, Any], status: int = 200) -> Response:
    session = getattr(request.state, "session", None)
    base = {"session": session, "csrf_token": session.csrf_token if session else ""}
    return request.app.state.templates.TemplateResponse(
        request, template, base | context, status_code=status
    )
