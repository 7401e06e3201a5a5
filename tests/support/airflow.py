"""Apache Airflow for the tests, in a virtualenv of its own: Airflow 3 and pgferry's runtime
dependencies, pinned by deploy/airflow/constraints-*.txt, built once per machine under
~/.cache/pgferry (PGFERRY_AIRFLOW_VENV names another place) from the package index. pgferry
itself comes from this checkout (PYTHONPATH), so the tests run the code under test.

Airflow runs in subprocesses (tests/airflow/inside/*.py): its settings are read when it is
first imported, and its metadata is a SQLite file in a folder of the test's own."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from psycopg.conninfo import conninfo_to_dict

REPO = Path(__file__).resolve().parents[2]
CONSTRAINTS = REPO / "deploy" / "airflow" / "constraints-3.3.2-python3.11.txt"
INSIDE = REPO / "tests" / "airflow" / "inside"
# variables of the suite's own shell or of pytest that would change what Airflow does (under
# pytest it logs nothing to the console)
FOREIGN_PREFIXES = ("AIRFLOW", "DATABASE_URL", "PYTHONPATH", "PYTEST")


def requirements() -> list[str]:
    """Airflow as the `airflow` extra names it, and pgferry's own runtime dependencies."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return [*project["optional-dependencies"]["airflow"], *project["dependencies"]]


def airflow_python() -> Path:
    """The Python of the Airflow virtualenv, built first when missing."""
    stamp = hashlib.sha256(
        CONSTRAINTS.read_bytes() + "\n".join(requirements()).encode()
    ).hexdigest()[:12]
    default = Path.home() / ".cache" / "pgferry" / f"airflow-{stamp}"
    venv = Path(os.environ.get("PGFERRY_AIRFLOW_VENV") or default)
    python = venv / "bin" / "python"
    if (venv / ".complete").exists():
        return python
    shutil.rmtree(venv, ignore_errors=True)  # a build that was cut short
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "-c", str(CONSTRAINTS), *requirements()],
        check=True,
    )  # fmt: skip
    (venv / ".complete").write_text(stamp)
    return python


def airflow_connection(url: str, password: str | None = None, user: str | None = None) -> str:
    """An Airflow connection (JSON, as AIRFLOW_CONN_<ID> takes it) to the database ``url``, as
    ``user`` with ``password`` when given."""
    parts = conninfo_to_dict(url)
    extra = {
        k: v for k, v in parts.items() if k not in {"host", "port", "user", "password", "dbname"}
    }
    connection = {
        "conn_type": "pgferry",
        "host": parts.get("host"),
        "port": int(parts["port"]) if parts.get("port") else None,
        "login": user or parts.get("user"),
        "password": password or parts.get("password"),
        "schema": parts.get("dbname"),
        "extra": extra,
    }
    return json.dumps(connection)


@dataclass
class Airflow:
    python: Path
    home: Path

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN_PREFIXES)}
        return {
            **base,
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.home}/airflow.db",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "PYTHONPATH": str(REPO),
            **(extra or {}),
        }

    def command(self, script: str, *args: str) -> list[str]:
        return [str(self.python), str(INSIDE / script), *args]

    def run(
        self, script: str, *args: str, env: dict[str, str] | None = None, timeout: float = 300
    ) -> subprocess.CompletedProcess:
        return subprocess.run(
            self.command(script, *args),
            env=self.env(env),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    @contextmanager
    def running(
        self, script: str, *args: str, env: dict[str, str] | None = None, deadline: float = 300
    ) -> Iterator[subprocess.Popen]:
        """``script`` running for the block, its stdout and stderr as one stream of lines;
        killed when the block ends, or after ``deadline`` seconds, so that a test waiting for a
        line that never comes fails instead of hanging."""
        process = subprocess.Popen(
            self.command(script, *args),
            env=self.env(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        watchdog = threading.Timer(deadline, process.kill)
        watchdog.daemon = True
        watchdog.start()
        try:
            yield process
        finally:
            watchdog.cancel()
            if process.poll() is None:
                process.kill()
            process.wait()
            process.stdout.close()


def last_json(output: str) -> Any:
    """The JSON a script printed last (Airflow logs to the same stream before it)."""
    for line in reversed(output.splitlines()):
        if line.startswith(("{", "[")):
            return json.loads(line)
    raise AssertionError(f"no JSON result in the output:\n{output[-3000:]}")
