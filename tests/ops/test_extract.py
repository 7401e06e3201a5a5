"""Masking functions and obfuscated development extracts (gzipped CSV to a folder or S3)."""

from __future__ import annotations

import csv
import gzip
import io
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.s3 import make_client
from tests.support.permits import run_harness
from tests.support.pg import connect

CLIENTS = [
    ("1", "Alice", "Smith", "alice.smith@gmail.com", "+1 (985) 123-4512"),
    ("2", "Bob", "Jones", "bob@example.org", "250-555-0199"),
    ("3", "Chandra", "Rao", None, None),
]


@pytest.fixture
def client_table(db_url: str) -> str:
    with connect(db_url) as conn:
        conn.execute(
            "CREATE SCHEMA stg; CREATE TABLE stg.client"
            " (id int, first_name text, last_name text, email text, phone text)"
        )
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO stg.client VALUES (%s, %s, %s, %s, %s)", CLIENTS)
        conn.execute(
            "INSERT INTO etl.mask_rule VALUES ('stg.client', 'first_name', 'hash'),"
            " ('stg.client', 'last_name', 'null'), ('stg.client', 'email', 'email'),"
            " ('stg.client', 'phone', 'phone')"
        )
    return db_url


def read_csv_gz(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(gzip.decompress(data).decode())))


def test_mask_functions(db_url: str) -> None:
    with connect(db_url) as conn:
        row = conn.execute(
            "SELECT etl.mask_phone('985 123 4512'), etl.mask_phone('12'), etl.mask_phone(NULL),"
            " etl.mask_email('alice@gmail.com'), etl.mask_email(NULL),"
            " etl.mask_hash('Alice'), etl.mask_hash('Alice'), etl.mask_hash('Alice', 's3cret')"
        ).fetchone()
    phone, short, null_phone, email, null_email, hash1, hash2, salted = row
    assert (phone, short, null_phone, null_email) == ("985***12", "***", None, None)
    assert email[0] == "a" and email[3:] == "@g***.com" and len(email) == len("a21@g***.com")
    assert hash1 == hash2 and len(hash1) == 9 and salted != hash1


def test_obfuscated_extract_leaves_no_original_value(client_table: str, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(
        app,
        ["extract", "stg.client", "--to", str(tmp_path)],
        env={"DATABASE_URL": client_table, "PGFERRY_MASK_SALT": "pepper"},
    )
    assert result.exit_code == 0, result.output
    assert "stg.client: 3 rows" in result.output

    rows = read_csv_gz((tmp_path / "stg.client.csv.gz").read_bytes())
    assert rows[0] == ["id", "first_name", "last_name", "email", "phone"]
    assert [r[0] for r in rows[1:]] == ["1", "2", "3"]
    assert rows[1][3:] == [rows[1][3], "198***12"] and rows[1][3].endswith("@g***.com")
    assert [r[2] for r in rows[1:]] == ["", "", ""]
    text = (tmp_path / "stg.client.csv.gz").read_bytes()
    plain = gzip.decompress(text).decode()
    for original in [value for client in CLIENTS for value in client[1:] if value]:
        assert original not in plain

    again = tmp_path / "again"
    runner.invoke(
        app,
        ["extract", "stg.client", "--to", str(again)],
        env={"DATABASE_URL": client_table, "PGFERRY_MASK_SALT": "pepper"},
    )
    assert read_csv_gz((again / "stg.client.csv.gz").read_bytes()) == rows  # stable hashes


def test_plain_extract_keeps_values(client_table: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["extract", "stg.client", "--to", str(tmp_path), "--plain"],
        env={"DATABASE_URL": client_table},
    )
    assert result.exit_code == 0, result.output
    rows = read_csv_gz((tmp_path / "stg.client.csv.gz").read_bytes())
    assert rows[1] == list(CLIENTS[0])


def test_extract_to_s3(
    client_table: str, s3_endpoint: str, s3_credentials: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = f"dev-extracts-{uuid.uuid4().hex[:8]}"
    s3 = make_client(s3_endpoint)
    s3.create_bucket(Bucket=bucket)

    result = CliRunner().invoke(
        app,
        ["extract", "stg.client", "--to", f"s3://{bucket}/daily/2026-11-21"],
        env={
            "DATABASE_URL": client_table,
            "S3_ENDPOINT_URL": s3_endpoint,
            "PGFERRY_MASK_SALT": "x",
        },
    )

    assert result.exit_code == 0, result.output
    body = s3.get_object(Bucket=bucket, Key="daily/2026-11-21/stg.client.csv.gz")["Body"].read()
    rows = read_csv_gz(body)
    assert len(rows) == 4 and rows[1][4] == "198***12"


def test_a_rule_may_name_the_table_as_the_caller_does(db_url: str, tmp_path: Path) -> None:
    with connect(db_url) as conn:
        conn.execute(
            "CREATE TABLE client (id int, phone text);"
            " INSERT INTO client VALUES (1, '250 555 0199');"
            " INSERT INTO etl.mask_rule VALUES ('client', 'phone', 'phone')"
        )
    result = CliRunner().invoke(
        app,
        ["extract", "client", "--to", str(tmp_path)],
        env={"DATABASE_URL": db_url, "PGFERRY_MASK_SALT": "x"},
    )
    assert result.exit_code == 0, result.output
    assert "1 column(s) masked" in result.output
    assert read_csv_gz((tmp_path / "public.client.csv.gz").read_bytes())[1] == ["1", "250***99"]


def test_an_extract_no_rule_masks_is_flagged(db_url: str, tmp_path: Path) -> None:
    with connect(db_url) as conn:
        conn.execute("CREATE TABLE unlisted (id int, email text)")
    result = CliRunner().invoke(
        app,
        ["extract", "unlisted", "--to", str(tmp_path)],
        env={"DATABASE_URL": db_url, "PGFERRY_MASK_SALT": "x"},
    )
    assert "warning: no etl.mask_rule masks public.unlisted: it was exported as is" in (
        result.stderr
    )
    assert "public.unlisted: 0 rows" in result.stdout


def test_the_salt_is_never_in_statement_text(db_url: str, tmp_path: Path) -> None:
    """The extract's own statement, as pg_stat_activity shows it, is exported as a column:
    it reads the salt from a setting; the salt itself is nowhere in it."""
    salt = f"pepper-{uuid.uuid4().hex[:8]}"
    with connect(db_url) as conn:
        conn.execute(
            "CREATE TABLE client (id int, name text);"
            " INSERT INTO client VALUES (1, 'Alice');"
            " CREATE VIEW spied AS SELECT c.id, c.name, (SELECT query FROM pg_stat_activity"
            "   WHERE pid = pg_backend_pid()) AS statement FROM client c;"
            " INSERT INTO etl.mask_rule VALUES ('spied', 'name', 'hash')"
        )
        expected = conn.execute("SELECT etl.mask_hash('Alice', %s)", [salt]).fetchone()[0]
    result = run_harness(
        {"DATABASE_URL": db_url, "PGFERRY_MASK_SALT": salt},
        "extract",
        "spied",
        "--to",
        str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    header, row = read_csv_gz((tmp_path / "public.spied.csv.gz").read_bytes())
    assert header == ["id", "name", "statement"]
    assert row[1] == expected  # hashed with the salt
    assert row[2].startswith("COPY (SELECT") and "current_setting('pgferry.mask_salt'" in row[2]
    assert salt not in row[2]
    assert salt not in result.stdout + result.stderr


def test_the_generated_query_reads_the_salt_from_a_setting(db_url: str) -> None:
    with connect(db_url) as conn:
        conn.execute("CREATE TABLE client (id int, email text)")
        conn.execute("INSERT INTO etl.mask_rule VALUES ('client', 'email', 'email')")
        conn.execute("SELECT set_config('pgferry.mask_salt', %s, false)", ["s3cret-salt"])
        query = conn.execute("SELECT etl.extract_query('client')").fetchone()[0]
        assert "s3cret-salt" not in query and "pgferry.mask_salt" in query
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="no longer takes the salt"):
            conn.execute("SELECT etl.extract_query('client', true, 'salt')")


def server_log(conn: psycopg.Connection) -> str | None:
    """Where this server writes its log, if a superuser can read it: the logging collector's
    current file, else the server's stderr when it is a regular file (Debian's pg_ctlcluster)."""
    for candidate in (
        conn.execute("SELECT pg_current_logfile()").fetchone()[0],
        "/proc/self/fd/2",
    ):
        if candidate is None:
            continue
        try:
            size = conn.execute("SELECT size FROM pg_stat_file(%s)", [candidate]).fetchone()[0]
        except psycopg.Error:
            continue
        if size:
            return candidate
    return None


def read_log_from(conn: psycopg.Connection, path: str, offset: int, until: str) -> str:
    """The log written after ``offset``, read again until ``until`` shows (the collector
    writes a moment after the client has its error)."""
    deadline = time.monotonic() + 10
    while True:
        size = conn.execute("SELECT size FROM pg_stat_file(%s)", [path]).fetchone()[0]
        text = conn.execute(
            "SELECT pg_read_file(%s, %s, %s)", [path, offset, max(size - offset, 0)]
        ).fetchone()[0]
        if until in text or time.monotonic() > deadline:
            return text


def test_a_failed_extract_leaves_no_salt_in_the_server_log(db_url: str, tmp_path: Path) -> None:
    salt = f"pepper-{uuid.uuid4().hex[:8]}"
    with connect(db_url) as conn:
        path = server_log(conn)
        if path is None:
            pytest.skip("this server's log is not readable with pg_read_file")
        conn.execute(
            "CREATE VIEW failing AS SELECT g AS id, 'Alice' || g AS name, 1 / (g - 2) AS ratio"
            "  FROM generate_series(1, 3) g;"
            " INSERT INTO etl.mask_rule VALUES ('failing', 'name', 'hash')"
        )
        offset = conn.execute("SELECT size FROM pg_stat_file(%s)", [path]).fetchone()[0]
        result = run_harness(
            {"DATABASE_URL": db_url, "PGFERRY_MASK_SALT": salt},
            "extract",
            "failing",
            "--to",
            str(tmp_path),
        )
        assert result.returncode == 1, result.stderr
        assert "division by zero" in result.stderr and "Traceback" not in result.stderr
        logged = read_log_from(conn, path, offset, "current_setting")
    assert "division by zero" in logged
    assert "STATEMENT:  COPY (SELECT" in logged and "current_setting('pgferry.mask_salt'" in logged
    assert salt not in logged


def test_one_malformed_rule_breaks_no_extract(db_url: str, tmp_path: Path) -> None:
    """PostgreSQL 15's to_regclass raises on a malformed name: such a rule matches nothing."""
    with connect(db_url) as conn:
        conn.execute(
            "CREATE TABLE client (id int, phone text);"
            " INSERT INTO client VALUES (1, '250 555 0199');"
            " INSERT INTO etl.mask_rule VALUES ('a.b.c.d', 'phone', 'null'),"
            "   ('\"unclosed', 'phone', 'null'), ('x..y', 'phone', 'null'),"
            "   ('otherdb.public.client', 'phone', 'null'), ('public.client', 'phone', 'phone')"
        )
    result = run_harness(
        {"DATABASE_URL": db_url, "PGFERRY_MASK_SALT": "x"},
        "extract",
        "client",
        "--to",
        str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    assert "public.client: 1 rows" in result.stdout and "1 column(s) masked" in result.stdout
    assert read_csv_gz((tmp_path / "public.client.csv.gz").read_bytes())[1] == ["1", "250***99"]


def test_file_names_stay_inside_the_folder(db_url: str, tmp_path: Path) -> None:
    with connect(db_url) as conn:
        conn.execute(
            'CREATE TABLE "../x" (id int); CREATE TABLE "a/b" (id int);'
            ' CREATE TABLE a_b (id int); CREATE SCHEMA "../s"; CREATE TABLE "../s"."..\\t" (id int)'
        )
    folder = tmp_path / "out"
    result = run_harness(
        {"DATABASE_URL": db_url},
        "extract",
        '"../x"',
        '"a/b"',
        "a_b",
        '"../s"."..\\t"',
        "--plain",
        "--to",
        str(folder),
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in folder.iterdir()) == [
        "___s.___t.csv.gz",
        "public.___x.csv.gz",
        "public.a_b-2.csv.gz",
        "public.a_b.csv.gz",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # nothing written beside it
    assert 'public."../x": 0 rows' in result.stdout


def test_an_unknown_table_is_a_one_line_fault_and_writes_nothing(
    db_url: str, tmp_path: Path
) -> None:
    with connect(db_url) as conn:
        conn.execute("CREATE TABLE client (id int)")
    result = run_harness(
        {"DATABASE_URL": db_url},
        "extract",
        "client",
        "../x",
        "a/b",
        "--plain",
        "--to",
        str(tmp_path / "out"),
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        'error: no table "../x", "a/b" in this database (or not visible to this user);'
        " name it as schema.table, as psql's \\dt lists it"
    ]
    assert not (tmp_path / "out").exists()
