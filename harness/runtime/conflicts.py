"""Statements PostgreSQL rolled back to resolve a conflict are run again.

A deadlock victim (40P01) or a serialization failure (40001) was rolled back whole, so running
the same call again is safe, and usually succeeds at once. Anything else is raised as it is.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from psycopg import errors

log = logging.getLogger(__name__)
T = TypeVar("T")


def retry_conflicts(call: Callable[[], T], attempts: int = 5) -> T:
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except (errors.DeadlockDetected, errors.SerializationFailure) as conflict:
            if attempt == attempts:
                raise
            log.info(
                "statement rolled back by a conflict; running it again",
                extra={"sqlstate": conflict.sqlstate, "attempt": attempt},
            )
    raise AssertionError("unreachable")
