"""The file importer end to end, for real: files in a folder and on an FTP server, raw copies in
moto's S3, the target in PostgreSQL; what each file leaves in the target (compared field by
field with its CSV), in S3, in files.file and in the journal."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import os
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from harness.files.importer import Claimed, Importer, RawStore, discover, load_sources
from harness.s3 import make_client
from tests.support.pg import connect

TARGET = """
CREATE SCHEMA app;
CREATE TABLE app.property (
    pid         integer PRIMARY KEY,
    address     text NOT NULL,
    assessed    numeric(12, 2),
    inserted_at timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    deleted_at  timestamptz
);
"""
HEADER = ["pid", "address", "assessed"]


def rows(first: int, count: int) -> list[list[str]]:
    return [
        [str(n), f"{n} Main St, Victoria", f"{n * 1000}.50"] for n in range(first, first + count)
    ]


def csv_bytes(table: list[list[str]], header: list[str] = HEADER) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(table)
    return out.getvalue().encode()


def zipped(name: str, data: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, data)
    return out.getvalue()


@dataclass
class Setup:
    url: str
    folder: Path
    raw: RawStore
    scratch: Path

    def importer(self, conn: psycopg.Connection, worker: str = "w1") -> Importer:
        return Importer(conn, self.raw, self.scratch, worker)

    def discover_and_import(self) -> dict[str, int]:
        with connect(self.url) as conn:
            discover(conn, load_sources(conn)["county"])
            return dict(self.importer(conn).run_once(limit=50))

    def target(self) -> list[tuple]:
        with connect(self.url) as conn:
            return conn.execute(
                "SELECT pid::text AS id, address, assessed::text FROM app.property ORDER BY pid"
            ).fetchall()

    def files(self) -> dict[str, tuple]:
        with connect(self.url) as conn:
            found = conn.execute(
                "SELECT path, state, step, error_class, duplicate_of IS NOT NULL FROM files.file"
            ).fetchall()
        return {row[0]: row[1:] for row in found}


@pytest.fixture
def setup(
    db_url: str,
    s3_endpoint: str,
    s3_credentials: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Setup]:
    folder = tmp_path / "incoming"
    folder.mkdir()
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    client = make_client(s3_endpoint)
    bucket = f"raw-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=bucket)
    monkeypatch.setenv("PGFERRY_FILES_COUNTY_URL", folder.as_uri())
    with connect(db_url) as conn:
        conn.execute(TARGET)
        conn.execute(
            "SELECT files.define_source('county', 'app.property', p_pattern => '*.csv*',"
            " p_header => %s)",
            [HEADER],
        )
    yield Setup(db_url, folder, RawStore(client, bucket), scratch)
    assert list(scratch.iterdir()) == []  # no local copy outlives its file


def journal(url: str, path: str) -> list[str]:
    with connect(url) as conn:
        return [
            step
            for (step,) in conn.execute(
                "SELECT j.step FROM etl.journal AS j JOIN files.file AS f"
                " ON f.file_id = j.item_id WHERE j.pipeline = 'files' AND f.path = %s"
                " ORDER BY j.journal_id",
                [path],
            )
        ]


def test_files_are_imported_step_by_step_and_kept_raw(setup: Setup) -> None:
    first, second = rows(1, 300), rows(301, 200)
    (setup.folder / "a.csv.gz").write_bytes(gzip.compress(csv_bytes(first)))
    (setup.folder / "b.csv.zip").write_bytes(zipped("b.csv", csv_bytes(second)))

    outcomes = setup.discover_and_import()

    assert outcomes == {"imported": 2}
    assert setup.target() == [tuple(row) for row in first + second]
    assert setup.files() == {
        "a.csv.gz": ("imported", "merged", None, False),
        "b.csv.zip": ("imported", "merged", None, False),
    }
    steps = ["found", "downloaded", "unpacked", "validated", "stored", "loaded", "merged"]
    assert journal(setup.url, "a.csv.gz") == steps
    with connect(setup.url) as conn:
        raw_keys = conn.execute("SELECT path, raw_key, sha256 FROM files.file").fetchall()
        assert conn.execute("SELECT * FROM etl.verify_journal()").fetchall() == []
    for path, key, sha256 in raw_keys:
        body = setup.raw.client.get_object(Bucket=setup.raw.bucket, Key=key)["Body"].read()
        assert body == (setup.folder / path).read_bytes()
        assert hashlib.sha256(body).hexdigest() == sha256


def test_the_same_content_offered_twice_is_imported_once(setup: Setup) -> None:
    data = gzip.compress(csv_bytes(rows(1, 50)), mtime=0)
    (setup.folder / "monday.csv.gz").write_bytes(data)
    assert setup.discover_and_import() == {"imported": 1}
    with connect(setup.url) as conn:
        before = conn.execute("SELECT pid, xmin::text FROM app.property ORDER BY pid").fetchall()
    (setup.folder / "tuesday.csv.gz").write_bytes(data)

    assert setup.discover_and_import() == {"duplicate": 1}

    assert setup.files()["tuesday.csv.gz"] == ("duplicate", "downloaded", None, True)
    with connect(setup.url) as conn:
        after = conn.execute("SELECT pid, xmin::text FROM app.property ORDER BY pid").fetchall()
    assert after == before  # not a row written again
    assert setup.discover_and_import() == {}  # and the same listing adds nothing


@pytest.mark.parametrize(
    ("name", "content", "error_class", "last_step"),
    [
        ("truncated.csv.gz", gzip.compress(csv_bytes(rows(1, 500)))[:-20], "corrupt", "downloaded"),
        ("empty.csv", b"", "empty", "downloaded"),
        (
            "wrong.csv",
            csv_bytes(rows(1, 5), header=["id", "street", "value"]),
            "format",
            "downloaded",
        ),
        ("picture.csv", b"\x89PNG\r\n\x1a\n" + bytes(200), "format", "downloaded"),
    ],
)
def test_a_bad_file_is_a_dead_letter_with_its_class_and_the_good_ones_land(
    setup: Setup, name: str, content: bytes, error_class: str, last_step: str
) -> None:
    (setup.folder / name).write_bytes(content)
    (setup.folder / "good.csv").write_bytes(csv_bytes(rows(1000, 10)))

    assert setup.discover_and_import() == {"dead": 1, "imported": 1}

    assert setup.files()[name][:3] == ("dead", last_step, error_class)
    assert setup.target() == [tuple(row) for row in rows(1000, 10)]
    listed = setup.raw.client.list_objects_v2(Bucket=setup.raw.bucket).get("Contents", [])
    assert [obj["Key"].rsplit("/", 1)[-1] for obj in listed] == ["good.csv"]  # nothing bad kept
    with connect(setup.url) as conn:
        alerts = conn.execute("SELECT subject FROM etl.alert WHERE pipeline = 'files'").fetchall()
        requeued = conn.execute("SELECT files.requeue_dead()").fetchone()[0]
    assert len(alerts) == 1 and name in alerts[0][0]
    assert requeued == 1 and setup.files()[name][0] == "pending"


def test_bad_rows_are_logged_and_the_rest_of_the_file_lands(setup: Setup) -> None:
    table = rows(1, 20)
    table[4][2] = "not a number"
    (setup.folder / "mixed.csv").write_bytes(csv_bytes(table))

    assert setup.discover_and_import() == {"imported": 1}

    assert setup.target() == [tuple(row) for row in table if row[0] != "5"]
    with connect(setup.url) as conn:
        key, detail = conn.execute(
            "SELECT row_key, detail FROM etl.error_log WHERE object_name = 'etl.merge_table'"
        ).fetchone()
        merged = conn.execute(
            "SELECT detail FROM etl.journal WHERE pipeline = 'files' AND step = 'merged'"
        ).fetchone()[0]
    assert key == {"pid": "5"} and "field: assessed" in detail
    assert (merged["inserted"], merged["failed"]) == (19, 1)


def test_a_store_outage_is_retried_and_the_retry_checks_its_new_copy_again(
    setup: Setup,
) -> None:
    (setup.folder / "a.csv").write_bytes(csv_bytes(rows(1, 30)))
    real_bucket = setup.raw.bucket
    setup.raw = RawStore(setup.raw.client, "no-such-bucket")

    assert setup.discover_and_import() == {"retry": 1}

    assert setup.files()["a.csv"] == ("pending", "validated", "storage", False)
    assert setup.target() == []
    with connect(setup.url) as conn:
        failed_step = conn.execute(
            "SELECT detail ->> 'step' FROM etl.journal WHERE pipeline = 'files' AND step = 'failed'"
        ).fetchone()[0]
    assert failed_step == "stored"
    setup.raw = RawStore(setup.raw.client, real_bucket)
    with connect(setup.url) as conn:
        conn.execute("UPDATE files.file SET next_attempt_at = now()")  # the backoff is over
    assert setup.discover_and_import() == {"imported": 1}
    assert setup.target() == [tuple(row) for row in rows(1, 30)]
    # the local copy went with the failed attempt: downloaded again and, being a new copy,
    # checked again before it is stored
    assert journal(setup.url, "a.csv")[1:] == [
        *("downloaded", "unpacked", "validated", "failed"),
        *("downloaded", "unpacked", "validated", "stored", "loaded", "merged"),
    ]


def test_an_older_version_waiting_for_a_retry_never_lands_over_a_newer_one(setup: Setup) -> None:
    path = setup.folder / "a.csv"
    path.write_bytes(csv_bytes([["1", "old address", "1.00"]]))
    real_bucket = setup.raw.bucket
    setup.raw = RawStore(setup.raw.client, "no-such-bucket")
    assert setup.discover_and_import() == {"retry": 1}  # v1 waits for its retry
    setup.raw = RawStore(setup.raw.client, real_bucket)
    path.write_bytes(csv_bytes([["1", "new address, a longer one", "2.00"]]))
    os.utime(path, (path.stat().st_atime, path.stat().st_mtime + 60))

    assert setup.discover_and_import() == {"imported": 1}  # v2; v1 superseded when listed
    with connect(setup.url) as conn:
        conn.execute("UPDATE files.file SET next_attempt_at = now()")
    assert setup.discover_and_import() == {}

    assert setup.target() == [("1", "new address, a longer one", "2.00")]
    with connect(setup.url) as conn:
        states = conn.execute("SELECT state FROM files.file ORDER BY modified_at").fetchall()
    assert states == [("superseded",), ("imported",)]


def test_a_version_overtaken_while_in_flight_is_not_merged(setup: Setup) -> None:
    """v1 is claimed and stored; v2 of the same path is listed and imported meanwhile; when v1
    comes to its merge it is superseded, not merged over v2."""
    path = setup.folder / "a.csv"
    path.write_bytes(csv_bytes([["1", "old address", "1.00"]]))
    with connect(setup.url) as conn:
        discover(conn, load_sources(conn)["county"])
        importer = setup.importer(conn)
        token = conn.execute("SELECT etl.next_lease_token()").fetchone()[0]
        [row] = conn.execute(
            "SELECT * FROM files.claim_files('slow', 1, '1 hour', %s)", [token]
        ).fetchall()
        v1 = Claimed(*row)
        path.write_bytes(csv_bytes([["1", "new address, a longer one", "2.00"]]))
        os.utime(path, (path.stat().st_atime, path.stat().st_mtime + 60))
        assert setup.discover_and_import() == {"imported": 1}  # v2, by another worker
        path.write_bytes(csv_bytes([["1", "old address", "1.00"]]))  # v1's bytes for its fetch

        assert importer.import_file(v1, token) == "superseded"

    assert setup.target() == [("1", "new address, a longer one", "2.00")]
    with connect(setup.url) as conn:
        states = conn.execute(
            "SELECT state, lease_token FROM files.file ORDER BY modified_at"
        ).fetchall()
    assert states == [("superseded", None), ("imported", None)]


def test_content_another_worker_merged_meanwhile_is_a_duplicate_not_merged_twice(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    """a.csv and b.csv hold the same bytes. b's worker has checked and COPYed b when a's worker
    imports a (just before b is stored): at its merge b is found a duplicate of a, its rows are
    rolled back, and the verdict is kept."""
    same = csv_bytes(rows(1, 20))
    (setup.folder / "a.csv").write_bytes(same)
    (setup.folder / "b.csv").write_bytes(same)
    with connect(setup.url) as conn:
        conn.execute("INSERT INTO app.property VALUES (999, 'x', 1, now(), now(), NULL)")
        discover(conn, load_sources(conn)["county"])
        first, second = setup.importer(conn, "w1"), setup.importer(conn, "w2")
        claimed = []
        for worker in ("w1", "w2"):
            token = conn.execute("SELECT etl.next_lease_token()").fetchone()[0]
            [row] = conn.execute(
                "SELECT * FROM files.claim_files(%s, 1, '1 hour', %s)", [worker, token]
            ).fetchall()
            claimed.append((Claimed(*row), token))
        (a, a_token), (b, b_token) = claimed
        store = second._store

        def store_after_a_is_imported(*args: object) -> dict:
            assert first.import_file(a, a_token) == "imported"
            return store(*args)

        monkeypatch.setattr(second, "_store", store_after_a_is_imported)

        assert second.import_file(b, b_token) == "duplicate"

        files = {
            path: rest
            for path, *rest in conn.execute(
                "SELECT path, state, duplicate_of IS NOT NULL, lease_token FROM files.file"
            ).fetchall()
        }
        merges = conn.execute(
            "SELECT count(*) FROM etl.journal WHERE pipeline = 'files' AND step = 'merged'"
        ).fetchone()[0]
    assert (a.path, b.path) == ("a.csv", "b.csv")
    assert files == {"a.csv": ["imported", False, None], "b.csv": ["duplicate", True, None]}
    assert merges == 1
    assert setup.target() == [*(tuple(row) for row in rows(1, 20)), ("999", "x", "1.00")]


def test_a_load_that_takes_fewer_rows_than_were_validated_is_refused(setup: Setup) -> None:
    """Before PostgreSQL 18 a CSV line `\\.` ends COPY's data early: the validation counted 5
    rows, the COPY takes 2, and nothing is merged. From 18 on the line is data: 5 rows land."""
    with connect(setup.url) as conn:
        version = conn.info.server_version
        conn.execute(
            "CREATE TABLE app.code (code text PRIMARY KEY, inserted_at timestamptz NOT NULL,"
            " updated_at timestamptz NOT NULL, deleted_at timestamptz);"
            " INSERT INTO app.code VALUES ('z', now(), now(), NULL)"  # not empty: merged
        )
        conn.execute(
            "SELECT files.define_source('county', 'app.code', p_pattern => '*.csv',"
            " p_header => ARRAY['code'])"
        )
    (setup.folder / "codes.csv").write_bytes(b"code\na\nb\n\\.\nc\nd\n")

    outcomes = setup.discover_and_import()

    with connect(setup.url) as conn:
        codes = [c for (c,) in conn.execute("SELECT code FROM app.code ORDER BY code")]
    if version >= 180000:
        assert outcomes == {"imported": 1}
        assert codes == ["\\.", "a", "b", "c", "d", "z"]
    else:
        assert outcomes == {"dead": 1}
        assert setup.files()["codes.csv"][:3] == ("dead", "downloaded", "import")
        assert codes == ["z"]  # nothing of the file
