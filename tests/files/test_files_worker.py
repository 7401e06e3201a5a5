"""The file importer inside `harness run` (`harness run files`, or PGFERRY_PIPELINES naming
files): a one-off run imports what is there and says what is dead; a long-running worker lists
the sources again every FILES_LIST_SECONDS and imports a file that arrives while it runs."""

from __future__ import annotations

import gzip

from tests.cli.support import run as run_harness
from tests.files.conftest import Site
from tests.files.test_importer import csv_bytes, rows
from tests.runtime.test_worker import wait_for
from tests.support.permits import running_harness, stop_harness
from tests.support.pg import connect


def test_a_one_off_run_imports_the_files_and_names_the_dead_ones(site: Site) -> None:
    (site.folder / "good.csv").write_bytes(csv_bytes(rows(1, 40)))
    (site.folder / "bad.csv.gz").write_bytes(gzip.compress(csv_bytes(rows(100, 40)))[:-10])

    ran = run_harness(site.env, "run", "files")

    assert ran.returncode == 1, ran.stderr
    assert "files: 2 new file(s) listed; 1 dead, 1 imported" in ran.stdout
    assert "bad.csv.gz" in ran.stdout and "corrupt" in ran.stdout
    assert site.target() == [tuple(row) for row in rows(1, 40)]


def test_a_long_running_worker_imports_a_file_that_arrives_while_it_runs(
    site: Site,
) -> None:
    env = {**site.env, "PGFERRY_PIPELINES": "files", "FILES_LIST_SECONDS": "0.2"}
    with running_harness(env, "run", "--loop") as worker, connect(site.url) as conn:
        wait_for(  # the worker is up: its heartbeat names the files pipeline
            lambda: conn.execute(
                "SELECT count(*) FROM etl.worker WHERE 'files' = ANY (pipelines)"
            ).fetchone()[0],
            30,
        )
        (site.folder / "late.csv").write_bytes(csv_bytes(rows(1, 25)))
        wait_for(
            lambda: conn.execute(
                "SELECT count(*) FROM files.file WHERE state = 'imported'"
            ).fetchone()[0],
            30,
        )
        out, err = stop_harness(worker)
    assert worker.returncode == 0, err
    assert "files: 1 new file(s) listed; 1 imported" in out
    assert site.target() == [tuple(row) for row in rows(1, 25)]
