"""Lineage: where one permit or one shipment went, as etl.permit_lineage and
etl.shipment_lineage return it (one JSON document each), shown as an ordered list of steps with
their times. Read-only, queried as the logged-in user; the functions leave out what a viewer may
not see (plate, VIN, PDF, personal fields of a shipment), and nothing else is read here."""

from __future__ import annotations

import re
from typing import Any

import psycopg
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from harness.console.pages.common import as_user, render, requires
from harness.console.params import BadFilter

_NUMBER = re.compile(r"^[^\x00-\x1f\x7f]{1,64}$")


def _number(value: str | None, name: str) -> str | None:
    value = (value or "").strip()
    if not value:
        return None
    if not _NUMBER.match(value):
        raise BadFilter(f"{name} must be at most 64 printable characters")
    return value


def permit_lineage(connection: psycopg.Connection, number: str) -> dict[str, Any]:
    return connection.execute("SELECT etl.permit_lineage(%s)", [number]).fetchone()[0]


def shipment_lineage(connection: psycopg.Connection, number: str) -> list[dict[str, Any]]:
    return connection.execute("SELECT etl.shipment_lineage(%s)", [number]).fetchone()[0]


def _permit_found(lineage: dict[str, Any]) -> bool:
    return any(lineage.get(part) for part in ("staged", "permits", "journal"))


@requires("read")
async def lineage(request: Request) -> Response:
    q = request.query_params
    try:
        permit = _number(q.get("permit"), "permit")
        shipment = _number(q.get("shipment"), "shipment")
        if permit and shipment:
            raise BadFilter("look up a permit or a shipment, not both")
    except BadFilter as bad:
        return render(request, "error.html", {"message": str(bad)}, 400)

    context: dict[str, Any] = {"permit": permit or "", "shipment": shipment or ""}
    if permit:
        found = await as_user(request, lambda connection: permit_lineage(connection, permit))
        context["permit_lineage"] = found if _permit_found(found) else None
    elif shipment:
        context["shipments"] = await as_user(
            request, lambda connection: shipment_lineage(connection, shipment)
        )
    return render(request, "lineage.html", context)


routes = [Route("/lineage", lineage, methods=["GET"])]
