"""Which DI processes run, and in what order: the named ones (or a group's, or all), in waves
by their dependencies (a process runs after every selected process it depends on has ended),
each wave's processes side by side on their own connections, at most ``parallel`` at once. A
failed process does not hold back the ones that depend on it: they run on what their inputs
hold, and the next scheduled run heals them (seed 001)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from harness.di.metadata import DiProcess, UnknownProcess

Result = TypeVar("Result")


class DependencyCycle(ValueError):
    """The selected processes depend on each other in a circle."""


def select(processes: list[DiProcess], names: list[str], group: str | None) -> list[DiProcess]:
    """The processes named, those of ``group``, or all when neither is given."""
    by_name = {p.name: p for p in processes}
    unknown = [name for name in names if name not in by_name]
    if unknown:
        raise UnknownProcess(
            f"no DI process {', '.join(map(repr, unknown))}: `harness di list` shows the"
            " declared ones (etl.define_di_process declares one)"
        )
    chosen = [by_name[name] for name in dict.fromkeys(names)]
    if group is not None:
        chosen += [p for p in processes if p.process_group == group and p not in chosen]
        if not chosen:
            raise UnknownProcess(f"no DI process in group {group!r}: `harness di list` shows them")
    return chosen if names or group is not None else processes


def waves(processes: list[DiProcess]) -> Iterator[list[DiProcess]]:
    """The processes in dependency order, as lists that may run side by side. Dependencies on
    processes not selected are already met."""
    waiting = {p.name: p for p in processes}
    done: set[str] = set()
    while waiting:
        ready = [
            p for p in waiting.values() if all(d in done or d not in waiting for d in p.depends_on)
        ]
        if not ready:
            circle = ", ".join(sorted(waiting))
            raise DependencyCycle(
                f"DI processes {circle} depend on each other in a circle; fix depends_on"
            )
        yield ready
        for process in ready:
            done.add(process.name)
            del waiting[process.name]


def run_in_waves(
    processes: list[DiProcess], parallel: int, run: Callable[[DiProcess], Result]
) -> list[Result]:
    """``run`` every process, wave after wave, at most ``parallel`` at once; results in the
    order the processes ran."""
    results: list[Result] = []
    with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="pgferry-di") as pool:
        for wave in waves(processes):
            results += list(pool.map(run, wave))
    return results
