"""The console's web application: create_app(settings) assembles the routes (harness.console.
pages), the guard (sessions, CSRF, security headers), the templates and static files, and the
two background tasks: the shared snapshot's refresh and the session sweep."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from importlib.resources import files

import psycopg
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from harness.config import scrub
from harness.console import filters
from harness.console.auth import SessionStore
from harness.console.guard import Guard
from harness.console.pages import all_routes
from harness.console.pages.common import render
from harness.console.settings import ConsoleSettings
from harness.console.snapshot import SnapshotKeeper
from harness.console.throttle import LoginThrottle

log = logging.getLogger("harness.console")
SWEEP_SECONDS = 60


def create_app(settings: ConsoleSettings) -> Starlette:
    store = SessionStore(settings)
    keeper = SnapshotKeeper(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await run_in_threadpool(keeper.refresh)  # the first page already has numbers
        tasks = [
            asyncio.create_task(_every(settings.refresh_seconds, keeper.refresh)),
            asyncio.create_task(_every(SWEEP_SECONDS, store.sweep)),
        ]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            keeper.close()
            store.close_all()

    app = Starlette(
        routes=[
            *all_routes(),
            Mount(
                "/static",
                StaticFiles(directory=str(files("harness.console") / "static")),
                name="static",
            ),
        ],
        middleware=[Middleware(Guard, store=store, settings=settings)],
        exception_handlers={psycopg.Error: _database_error},
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.store = store
    app.state.throttle = LoginThrottle()
    app.state.keeper = keeper
    app.state.templates = Jinja2Templates(env=_environment())
    return app


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("harness.console", "templates"),
        autoescape=select_autoescape(["html", "svg"]),
    )
    env.filters.update(filters.ALL)
    return env


async def _every(seconds: float, work: Callable[[], object]) -> None:
    """``work`` in a worker thread every ``seconds`` (after the previous one ended), for ever;
    a failure is logged and the next round comes."""
    while True:
        await asyncio.sleep(seconds)
        try:
            await run_in_threadpool(work)
        except Exception:
            log.exception("console background task failed")


async def _database_error(request: Request, error: Exception) -> Response:
    """A page query the database refused or stopped: said on the page, not a traceback."""
    first = scrub((str(error).strip().splitlines() or [type(error).__name__])[0])
    if isinstance(error, psycopg.errors.InsufficientPrivilege):
        message, status = f"the database refused this to your role: {first}", 403
    elif isinstance(error, psycopg.errors.QueryCanceled):
        message, status = "the query took longer than the console's statement_timeout", 503
    elif isinstance(error, psycopg.OperationalError):
        message, status = f"the database cannot be reached now: {first}", 503
    else:
        message, status = f"the database refused the query: {first}", 500
    return render(request, "error.html", {"message": message}, status)
