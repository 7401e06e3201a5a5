"""Which DI processes run together: dependency waves, the selection by name or group, and a
circle of dependencies refused with the names in it."""

from __future__ import annotations

from datetime import timedelta
from threading import Lock

import pytest

from harness.di.metadata import DiProcess, UnknownProcess
from harness.di.schedule import DependencyCycle, run_in_waves, select, waves


def process(name: str, *depends_on: str, group: str = "default") -> DiProcess:
    return DiProcess(
        name,
        "source_to_stg",
        "qvp",
        f"app.{name}",
        None,
        None,
        None,
        f"stg.{name}",
        [],
        group,
        list(depends_on),
        timedelta(0),
    )


def test_waves_follow_the_dependencies() -> None:
    a, b, c, d = process("a"), process("b", "a"), process("c", "a"), process("d", "b", "c")
    assert [[p.name for p in w] for w in waves([d, c, b, a])] == [["a"], ["c", "b"], ["d"]]
    # a dependency that is not selected is met already
    assert [[p.name for p in w] for w in waves([b, d])] == [["b"], ["d"]]


def test_a_circle_is_refused_naming_its_processes() -> None:
    with pytest.raises(DependencyCycle, match="a, b depend on each other in a circle"):
        list(waves([process("a", "b"), process("b", "a"), process("c")]))


def test_selection_by_name_group_or_all() -> None:
    declared = [process("a"), process("b", group="svp"), process("c", group="svp")]
    assert [p.name for p in select(declared, [], None)] == ["a", "b", "c"]
    assert [p.name for p in select(declared, ["c", "a", "c"], None)] == ["c", "a"]
    assert [p.name for p in select(declared, [], "svp")] == ["b", "c"]
    with pytest.raises(UnknownProcess, match="no DI process 'x', 'y'"):
        select(declared, ["x", "a", "y"], None)
    with pytest.raises(UnknownProcess, match="group 'nope'"):
        select(declared, [], "nope")


def test_a_wave_runs_side_by_side_and_the_next_waits_for_it() -> None:
    """Each of b and c sees a finished; d sees both: the order a wave ends in is kept."""
    seen: list[tuple[str, frozenset[str]]] = []
    ended: set[str] = set()
    lock = Lock()

    def run(p: DiProcess) -> str:
        with lock:
            seen.append((p.name, frozenset(ended)))
        with lock:
            ended.add(p.name)
        return p.name

    processes = [process("a"), process("b", "a"), process("c", "a"), process("d", "b", "c")]
    assert sorted(run_in_waves(processes, 2, run)) == ["a", "b", "c", "d"]
    before = dict(seen)
    assert before["a"] == frozenset()
    assert {"a"} <= before["b"] and {"a"} <= before["c"]
    assert before["d"] == frozenset({"a", "b", "c"})
