"""Adding up the per-run totals of repeated drains (a worker loop runs many)."""

from __future__ import annotations

from typing import TypeVar

T = TypeVar("T")


def accumulate(total: T, part: T) -> T:
    """Add every field of ``part`` to ``total`` (numbers add, lists concatenate)."""
    for name, value in vars(part).items():
        setattr(total, name, getattr(total, name) + value)
    return total
