"""The loop both pipelines run (harness.runtime.rounds), on a real thread pool and a real
LeaseKeeper (its heartbeat not started: nothing here needs the database)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from harness.runtime.leases import LeaseKeeper
from harness.runtime.rounds import InFlight, run_rounds

Round = InFlight[str, str]


def nothing(_: object) -> None:
    pass


class Script:
    """Rounds claimed in the order given (None: a pass that claims nothing), and every step
    the loop took. ``on_call`` runs in each pool call, ``on_settle`` before each settle."""

    def __init__(
        self,
        pool: ThreadPoolExecutor,
        keeper: LeaseKeeper,
        *rounds: list[str] | None,
        on_call: Callable[[str], None] = nothing,
        on_settle: Callable[[Round], None] = nothing,
    ) -> None:
        self.pool, self.keeper, self.rounds = pool, keeper, list(rounds)
        self.on_call, self.on_settle = on_call, on_settle
        self.steps: list[str] = []

    def claim(self) -> Round | None:
        items = self.rounds.pop(0) if self.rounds else None
        self.steps.append(f"claim {items}")
        if items is None:
            return None
        token = len(self.steps)
        self.keeper.track(token, self.keeper.now(), len(items))
        return InFlight.queue(self.pool, token, items, self.call)

    def call(self, token: int, item: str) -> str:
        self.on_call(item)
        return item.upper()

    def settle(self, flight: Round) -> None:
        assert not self.keeper.lost(flight.token)  # held while its results are recorded
        self.on_settle(flight)
        self.steps.append(f"settle {flight.results()}")

    def run(self, idle: Callable[[bool], bool], stop: threading.Event | None = None) -> bool:
        def asked(claimed_since_idle: bool) -> bool:
            self.steps.append(f"idle {claimed_since_idle}")
            return idle(claimed_since_idle)

        return run_rounds(
            self.keeper,
            stop or threading.Event(),
            claim=self.claim,
            settle=self.settle,
            idle=asked,
            report=lambda: self.steps.append("report"),
        )


@pytest.fixture
def keeper() -> Iterator[LeaseKeeper]:
    def no_heartbeat() -> None:
        raise AssertionError("the heartbeat is not started here")

    keeper = LeaseKeeper(no_heartbeat, "test", lease_seconds=60)  # type: ignore[arg-type]
    yield keeper
    keeper.close()


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(4) as pool:
        yield pool


def test_the_next_round_runs_while_the_previous_one_is_settled(
    pool: ThreadPoolExecutor, keeper: LeaseKeeper
) -> None:
    second_round_running = threading.Event()

    def on_call(item: str) -> None:
        if item == "b":
            second_round_running.set()

    def on_settle(flight: Round) -> None:
        if flight.items == ["a"]:
            assert second_round_running.wait(10)  # queued before this settle, and running

    script = Script(
        pool, keeper, ["a"], ["b", "c"], None, None, on_call=on_call, on_settle=on_settle
    )
    assert script.run(idle=lambda claimed_since_idle: claimed_since_idle) is True
    assert script.steps == [
        "claim ['a']",
        "claim ['b', 'c']",
        "settle ['A']",
        "report",
        "claim None",
        "settle ['B', 'C']",
        "report",
        "idle True",  # something was claimed since the last idle pass: claim again
        "claim None",
        "idle False",
    ]
    assert keeper.lost(1) and keeper.lost(2)  # each released once settled


def test_a_stop_settles_the_round_in_hand_and_claims_no_more(
    pool: ThreadPoolExecutor, keeper: LeaseKeeper
) -> None:
    stop = threading.Event()
    script = Script(pool, keeper, ["a"], ["b"], ["c"], on_settle=lambda flight: stop.set())
    assert script.run(idle=lambda claimed: True, stop=stop) is False
    steps = ["claim ['a']", "claim ['b']", "settle ['A']", "report", "settle ['B']", "report"]
    assert script.steps == steps
    assert script.rounds == [["c"]]


def test_a_failed_settle_releases_every_lease_in_hand(
    pool: ThreadPoolExecutor, keeper: LeaseKeeper
) -> None:
    """The round being settled and the round already queued both lapse, rather than being
    extended by a heartbeat for as long as the process lives."""

    def on_settle(flight: Round) -> None:
        raise ConnectionError("the database went away")

    script = Script(pool, keeper, ["a"], ["b"], on_settle=on_settle)
    with pytest.raises(ConnectionError):
        script.run(idle=lambda claimed: True)
    assert script.steps == ["claim ['a']", "claim ['b']"]
    assert keeper.lost(1) and keeper.lost(2)  # no longer held: the heartbeat extends neither
