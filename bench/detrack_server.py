"""The DeTrack fake in its own process, as `python -m harness.demo.detrack_fake` runs it, that also
says on SIGTERM what it answered: benchmarks count the 429s the server gave, whoever the
clients were (dispatcher processes report no such figure).

    python -m bench.detrack_server [--api-key KEY] [--rate-limit 60] [--time-scale 1]

Prints the base URL on the first line; on SIGTERM one JSON line: requests, answers by status,
and the monotonic times (CLOCK_MONOTONIC, the same clock in every process of this machine) of
the first request and of the last 2xx answer's request, and every request's arrival time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import threading
import time
from collections import Counter

from harness.demo.detrack_fake import DetrackFake


def summary(fake: DetrackFake, time_scale: float) -> dict[str, object]:
    requests = fake.requests()
    answered = [r for r in requests if r.status is not None and 200 <= r.status < 300]
    return {
        "requests": len(requests),
        "statuses": dict(Counter(str(r.status) for r in requests)),
        # the fake's clock is monotonic() * time_scale: back to seconds of monotonic()
        "first_at": min((r.at for r in requests), default=0.0) / time_scale,
        "last_ok_at": max((r.at for r in answered), default=0.0) / time_scale,
        # when each request arrived (seconds of monotonic()), for a profile of the run
        "arrivals": [round(r.at / time_scale, 3) for r in requests],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--api-key", default="test-key")
    parser.add_argument("--rate-limit", type=int, default=60, help="requests per minute")
    parser.add_argument("--time-scale", type=float, default=1.0)
    args = parser.parse_args()
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    clock = lambda: time.monotonic() * args.time_scale  # noqa: E731
    with DetrackFake(
        api_key=args.api_key, rate_limit_per_minute=args.rate_limit, clock=clock
    ) as fake:
        print(fake.base_url, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            stopped.wait()
    print(json.dumps(summary(fake, args.time_scale)), flush=True)


if __name__ == "__main__":
    main()
