"""Jinja filters: how times, durations and missing values read on every page (times in UTC)."""

from __future__ import annotations

import json
from datetime import UTC, datetime


def timestamp(value: datetime | None) -> str:
    return "-" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def dash(value: object) -> object:
    return "-" if value is None else value


def pretty_json(value: object) -> str:
    """A JSON value (a redacted row payload, a DeTrack request) indented for reading."""
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def compact_json(value: object) -> str:
    return (
        "-" if value is None else json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    )


# what a journal step may carry at length (a DeTrack call): shown folded, not inline
EXCHANGE_KEYS = ("request", "response")


def without_exchange(detail: object) -> object:
    """A journal step's detail without its request and response (shown apart, folded)."""
    if not isinstance(detail, dict):
        return detail
    return {k: v for k, v in detail.items() if k not in EXCHANGE_KEYS}


def json_timestamp(value: object) -> str:
    """A time as a function's JSON document gives it (ISO 8601 text), read like timestamp."""
    if value is None or value == "":
        return "-"
    if isinstance(value, datetime):
        return timestamp(value)
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    if parsed.tzinfo is None:  # a date, or a time without zone: shown as given
        return str(value)
    return timestamp(parsed)


ALL = {
    "timestamp": timestamp,
    "duration": duration,
    "dash": dash,
    "pretty_json": pretty_json,
    "compact_json": compact_json,
    "json_timestamp": json_timestamp,
    "without_exchange": without_exchange,
}
