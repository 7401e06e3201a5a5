"""The console's pages, one module each with its `routes`. Failures, lineage and operator
actions slot in as further modules listed in ROUTE_MODULES (an action's POST route uses
@requires("act"); the guard has already checked its CSRF token)."""

from __future__ import annotations

from starlette.routing import BaseRoute

from harness.console.pages import actions, failures, journal, lineage, login, overview, runs

ROUTE_MODULES = (login, overview, runs, failures, lineage, journal, actions)


def all_routes() -> list[BaseRoute]:
    return [route for module in ROUTE_MODULES for route in module.routes]
