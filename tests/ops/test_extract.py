"""Masking functions and obfuscated development extracts (gzipped CSV to a folder or S3)."""

from __future__ import annotations

import csv
import gzip
import io
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app
from harness.s3 import make_client
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
    assert read_csv_gz((tmp_path / "client.csv.gz").read_bytes())[1] == ["1", "250***99"]


def test_an_extract_no_rule_masks_is_flagged(db_url: str, tmp_path: Path) -> None:
    with connect(db_url) as conn:
        conn.execute("CREATE TABLE unlisted (id int, email text)")
    result = CliRunner().invoke(
        app,
        ["extract", "unlisted", "--to", str(tmp_path)],
        env={"DATABASE_URL": db_url, "PGFERRY_MASK_SALT": "x"},
    )
    assert "warning: no etl.mask_rule masks unlisted: it was exported as is" in result.output
