"""Named crash points, so tests can kill -9 the harness at an exact step.

PGFERRY_FAILPOINTS="after_upload=3,before_move_commit=1" sends SIGKILL to this process the 3rd
time the code reaches `reach("after_upload")`. Unset (always, in production) it costs a dict
lookup. A real SIGKILL, not an exception: nothing gets to clean up, as in a crash.
"""

from __future__ import annotations

import os
import signal
import threading
from collections import Counter


def _parse(spec: str) -> dict[str, int]:
    points = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, _, count = item.partition("=")
        points[name] = int(count or 1)
    return points


_POINTS = _parse(os.environ.get("PGFERRY_FAILPOINTS", ""))
_reached: Counter[str] = Counter()
_lock = threading.Lock()


def reach(name: str) -> None:
    if name not in _POINTS:
        return
    with _lock:
        _reached[name] += 1
        if _reached[name] == _POINTS[name]:
            os.kill(os.getpid(), signal.SIGKILL)
