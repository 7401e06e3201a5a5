"""Results on stdout, logs and errors on stderr: `harness status > file` captures the status,
and a scheduler's log keeps only what went wrong."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import psycopg

from tests.cli.support import harness_command, run
from tests.support.pg import connect


def test_status_redirected_to_a_file_captures_the_status(db_url: str, tmp_path: Path) -> None:
    target = tmp_path / "status.txt"
    with target.open("w") as stdout:
        result = subprocess.run(
            [*harness_command(), "status"],
            env={**os.environ, "DATABASE_URL": db_url},
            stdout=stdout,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # no result line on stderr
    text = target.read_text()
    assert "pgferry status" in text and "permits" in text and "shipments" in text
    assert "alerts: 0 unsent of 0" in text


def test_status_json_is_the_whole_of_stdout(db_url: str) -> None:
    result = run({"DATABASE_URL": db_url}, "status", "--json")
    assert result.returncode == 0 and result.stderr == ""
    assert [p["name"] for p in json.loads(result.stdout)["pipelines"]] == [
        "files",
        "permits",
        "shipments",
    ]


def test_drift_findings_go_to_stdout(db_url: str, conn: psycopg.Connection) -> None:
    conn.execute("CREATE FUNCTION etl.hotfix() RETURNS int LANGUAGE sql AS 'SELECT 1'")
    result = run({"DATABASE_URL": db_url}, "db", "check")
    assert result.returncode == 1
    assert "unexpected: etl.hotfix()" in result.stdout
    assert "hotfix" not in result.stderr


def test_verify_and_retry_results_go_to_stdout(db_url: str) -> None:
    verify = run({"DATABASE_URL": db_url}, "verify")
    assert (verify.returncode, verify.stdout, verify.stderr) == (0, "journal: 0 offence(s)\n", "")
    retry = run({"DATABASE_URL": db_url}, "retry")
    assert retry.returncode == 0 and retry.stderr == ""
    assert retry.stdout.splitlines() == ["permits: requeued 0: []", "shipments: requeued 0: []"]


def test_a_warning_goes_to_stderr_and_the_result_to_stdout(db_url: str, tmp_path: Path) -> None:
    with connect(db_url) as conn:
        conn.execute("CREATE TABLE unlisted (id int)")
    result = run({"DATABASE_URL": db_url}, "extract", "unlisted", "--to", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("public.unlisted: 0 rows -> ")
    assert "PGFERRY_MASK_SALT is not set" in result.stderr
    assert "no etl.mask_rule masks public.unlisted" in result.stderr
