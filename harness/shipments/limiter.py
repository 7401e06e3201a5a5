"""A client-side rate limiter: at most N requests in any sliding window (DeTrack: 60 a minute).

A sliding window, not a fixed pause between calls, so a burst uses the whole allowance and the
limit's maximum rate is reachable. The window is kept a little longer than the server's
(``margin``, 2 % by default): the server counts a request when it arrives, later than this
client counts it, and requests in flight together arrive in any order; without the margin the
server can see one request too many and answer 429.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable


class SlidingWindowLimiter:
    def __init__(
        self,
        max_requests: int,
        window_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        margin: float = 0.02,
    ) -> None:
        if max_requests < 1:
            raise ValueError("max_requests must be at least 1")
        self.max_requests = max_requests
        self.window = window_seconds * (1 + margin)
        self._clock = clock
        self._sleep = sleep
        self._sent: deque[float] = deque()
        self._lock = threading.Lock()

    def acquire(self) -> None:
        """Block until one more request fits in the window, then count it."""
        while True:
            with self._lock:
                now = self._clock()
                while self._sent and self._sent[0] <= now - self.window:
                    self._sent.popleft()
                if len(self._sent) < self.max_requests:
                    self._sent.append(now)
                    return
                wait = self._sent[0] + self.window - now
            self._sleep(wait)

    def delay_all(self, seconds: float) -> None:
        """The server said slow down (429 Retry-After): nobody sends for ``seconds``."""
        with self._lock:
            until = self._clock() + seconds
            # fill the window so that the next slot opens when the server asked
            self._sent = deque([until - self.window] * self.max_requests)
