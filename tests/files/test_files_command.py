"""`harness files` as a scheduler runs it, in subprocesses: killed with SIGKILL after each step
(and inside the load's transaction), then run again; what the target, S3, files.file and the
journal hold at the end, compared with the files themselves. Two workers at once."""

from __future__ import annotations

import gzip
import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from tests.cli.support import OWN_PREFIXES, harness_command
from tests.cli.support import run as run_harness
from tests.files.conftest import Site
from tests.files.test_importer import csv_bytes, rows
from tests.support.pg import connect

CRASH_POINTS = [
    "files_after_downloaded",
    "files_after_unpacked",
    "files_after_validated",
    "files_after_stored",
    "files_after_loaded",  # inside the load's transaction: nothing of it commits
    "files_after_merged",  # the same, a step later
    "files_after_merge_commit",
]


@pytest.mark.parametrize("crash_at", CRASH_POINTS)
def test_a_worker_killed_after_any_step_loses_and_doubles_nothing(
    site: Site, crash_at: str
) -> None:
    table = rows(1, 400)
    (site.folder / "a.csv.gz").write_bytes(gzip.compress(csv_bytes(table)))

    crashed = run_harness({**site.env, "PGFERRY_FAILPOINTS": f"{crash_at}=1"}, "files", "run")
    assert crashed.returncode == -9, crashed.stderr
    site.expire_leases()
    finished = run_harness(site.env, "files", "run")

    assert finished.returncode == 0, finished.stderr
    assert site.target() == [tuple(row) for row in table]
    with connect(site.url) as conn:
        state = conn.execute("SELECT state, raw_key, sha256 FROM files.file").fetchall()
        merges = conn.execute(
            "SELECT count(*) FROM etl.journal WHERE pipeline = 'files' AND step = 'merged'"
        ).fetchone()[0]
        assert conn.execute("SELECT * FROM etl.verify_journal()").fetchall() == []
    [(status, key, sha256)] = state
    assert (status, merges) == ("imported", 1)
    stored = site.client.get_object(Bucket=site.bucket, Key=key)["Body"].read()
    assert stored == (site.folder / "a.csv.gz").read_bytes()
    assert hashlib.sha256(stored).hexdigest() == sha256


def test_two_workers_import_every_file_once(site: Site) -> None:
    tables = {f"f{n:02d}.csv": rows(n * 100, 50) for n in range(1, 13)}
    for name, table in tables.items():
        (site.folder / name).write_bytes(csv_bytes(table))
    assert run_harness(site.env, "files", "run", "--once").returncode == 0  # lists, claims 10

    workers = [
        subprocess.Popen(
            [*harness_command(), "files", "run"],
            env={**run_env(site.env), "FILES_BATCH": "1", "PGFERRY_WORKER_ID": f"w{n}"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(2)
    ]
    results = [worker.communicate(timeout=120) for worker in workers]

    assert [worker.returncode for worker in workers] == [0, 0], results
    expected = sorted(
        (tuple(row) for table in tables.values() for row in table), key=lambda r: int(r[0])
    )
    assert site.target() == expected
    with connect(site.url) as conn:
        assert conn.execute(
            "SELECT count(*), count(DISTINCT item_id) FROM etl.journal"
            " WHERE pipeline = 'files' AND step = 'merged'"
        ).fetchone() == (12, 12)
        assert conn.execute("SELECT DISTINCT state FROM files.file").fetchall() == [("imported",)]


def run_env(env: dict[str, str]) -> dict[str, str]:
    """The environment of a harness subprocess, as tests.cli.support.run builds it."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith(OWN_PREFIXES)}, **env}


def test_a_dead_file_exits_1_and_is_listed_and_requeued(site: Site) -> None:
    (site.folder / "bad.csv.gz").write_bytes(gzip.compress(csv_bytes(rows(1, 100)))[:-10])

    ran = run_harness(site.env, "files", "run")
    dead = run_harness(site.env, "files", "dead")
    status = run_harness(site.env, "files", "status")
    requeued = run_harness(site.env, "files", "requeue")

    assert ran.returncode == 1 and "1 dead" in ran.stdout
    assert "bad.csv.gz" in dead.stdout and "corrupt" in dead.stdout
    assert status.returncode == 1
    assert requeued.returncode == 0 and "requeued 1 file(s)" in requeued.stdout


@pytest.mark.parametrize("command", [["files", "run"], ["run", "files"]])
def test_a_source_without_its_url_is_a_configuration_fault_and_the_others_go_on(
    site: Site, tmp_path: Path, command: list[str]
) -> None:
    city = tmp_path / "city"
    city.mkdir()
    (city / "c.csv").write_bytes(csv_bytes(rows(1, 10)))
    with connect(site.url) as conn:
        conn.execute("SELECT files.define_source('city', 'app.property', p_pattern => '*.csv')")
    env = {k: v for k, v in site.env.items() if k != "PGFERRY_FILES_COUNTY_URL"}
    env["PGFERRY_FILES_CITY_URL"] = city.as_uri()

    ran = run_harness(env, *command)

    assert ran.returncode == 2, ran.stderr
    assert "PGFERRY_FILES_COUNTY_URL is not set" in ran.stdout + ran.stderr
    assert "Traceback" not in ran.stderr
    assert site.target() == [tuple(row) for row in rows(1, 10)]  # city's file went in
