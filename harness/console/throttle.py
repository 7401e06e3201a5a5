"""Failed logins slow a guesser down: after FAILURES_ALLOWED failed logins from one address
within WINDOW_SECONDS, that address is refused without a try (no connection to the database is
made) until its oldest failure in the window ages out. A successful login clears its address.

Per address, not per role: a role-wide lock would let anyone lock an operator out by guessing
wrong on purpose. Kept in this process's memory, like the sessions."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

FAILURES_ALLOWED = 10
WINDOW_SECONDS = 300.0
ADDRESSES_KEPT = 10_000  # beyond this, addresses without a recent failure are swept


class LoginThrottle:
    def __init__(
        self,
        allowed: int = FAILURES_ALLOWED,
        window: float = WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._allowed = allowed
        self._window = window
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def wait_seconds(self, address: str) -> float:
        """0 when ``address`` may try to log in now, else how long it must wait."""
        with self._lock:
            recent = self._recent(address)
            if len(recent) < self._allowed:
                return 0.0
            return max(0.0, recent[0] + self._window - self._clock())

    def failed(self, address: str) -> None:
        with self._lock:
            if len(self._failures) >= ADDRESSES_KEPT:
                for known in list(self._failures):
                    self._recent(known)  # forgets addresses without a recent failure
            recent = self._recent(address)
            recent.append(self._clock())
            self._failures[address] = recent

    def succeeded(self, address: str) -> None:
        with self._lock:
            self._failures.pop(address, None)

    def _recent(self, address: str) -> deque[float]:
        """The failures of ``address`` inside the window; an address with none is forgotten."""
        failures = self._failures.get(address, deque())
        cutoff = self._clock() - self._window
        while failures and failures[0] <= cutoff:
            failures.popleft()
        if failures:
            self._failures[address] = failures
        else:
            self._failures.pop(address, None)
        return failures
