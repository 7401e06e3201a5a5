"""Query parameters of the console's pages, checked before they reach SQL: a bad one is a 400
page that says what is wrong, never a database error."""

from __future__ import annotations

from datetime import date


class BadFilter(ValueError):
    """A query parameter a page cannot use; the message says which and why."""


def query_date(value: str | None, name: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise BadFilter(f"{name} must be a date (YYYY-MM-DD), not {value!r}") from None


def query_id(value: str | None, name: str) -> int | None:
    """A positive bigint key (a process id, an error id, a paging key)."""
    if not value:
        return None
    if not value.isdigit() or len(value) > 18:
        raise BadFilter(f"{name} must be a positive id")
    return int(value)
