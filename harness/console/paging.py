"""Keyset paging, as every list page of the console does it: ask for one row more than a page
to know whether an older page exists, and hand on the key of the page's last row. And the UTC
days a page's date filters name, as [from, to) timestamps."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Generic, TypeVar

import psycopg
from psycopg.rows import class_row

Row = TypeVar("Row")


@dataclass(frozen=True)
class Page(Generic[Row]):
    rows: list[Row]
    next_key: int | None  # the keyset value of the next (older) page, None on the last


def keyset_page(
    connection: psycopg.Connection,
    sql: str,
    params: dict[str, Any],
    row_type: type[Row],
    *,
    limit: int,
    key: str,
) -> Page[Row]:
    """One page of ``row_type`` rows from ``sql``, which takes the page size as %(limit)s;
    ``key`` is the row attribute the next page continues from."""
    with connection.cursor(row_factory=class_row(row_type)) as cursor:
        rows = cursor.execute(sql, params | {"limit": limit + 1}).fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows, getattr(rows[-1], key) if more else None)


def day_range(first: date | None, last: date | None) -> dict[str, datetime | None]:
    """The UTC days ``first`` through ``last`` (both inclusive, either open) as the
    [from, to) timestamps the read functions take."""
    return {
        "from": _day_start(first),
        "to": _day_start(last + timedelta(days=1)) if last else None,
    }


def _day_start(day: date | None) -> datetime | None:
    return None if day is None else datetime.combine(day, time(), UTC)
