"""Files CDC for real, on moto's S3 server: the objects a source table names in the window copied
from the source bucket to the target bucket with their SHA-256, once, however often a window is
read again; a corrupt target copy replaced; an object the source lacks logged with its key while
the others go on; the next window picks up only new files."""

from __future__ import annotations

import hashlib
import uuid
from datetime import timedelta

import pytest

from harness.di.metadata import find_process
from tests.di.conftest import Hub

FILES_TABLE = """
CREATE TABLE app.file_storage (
    id          integer PRIMARY KEY,
    path        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
"""


@pytest.fixture
def buckets(hub: Hub) -> tuple[str, str]:
    source, target = (f"{kind}-{uuid.uuid4().hex[:8]}" for kind in ("qvp-files", "unified"))
    for bucket in (source, target):
        hub.layer.client.create_bucket(Bucket=bucket)
    with hub.source() as conn:
        conn.execute(FILES_TABLE)
    return source, target


def add_files(
    hub: Hub, bucket: str, first: int, count: int, *, stored: bool = True
) -> dict[str, bytes]:
    """Rows of app.file_storage, and their objects under attachments/ (unless not ``stored``)."""
    files = {}
    with hub.source() as conn:
        for n in range(first, first + count):
            path = f"reports/{n:04d}/report {n}.pdf"
            body = f"%PDF-1.4 report {n} ".encode() * (50 + n)
            conn.execute(
                "INSERT INTO app.file_storage (id, path, created_at)"
                " VALUES (%s, %s, now() - interval '1 hour')",
                [n, path],
            )
            if stored:
                hub.layer.client.put_object(Bucket=bucket, Key=f"attachments/{path}", Body=body)
            files[path] = body
    return files


def define(hub: Hub, source: str, target: str) -> None:
    with hub.target() as conn:
        conn.execute(
            "SELECT etl.define_file_process('qvp_files', 'qvp', 'app.file_storage', 'path',"
            " %s, %s, p_window_overlap => %s)",
            [f"s3://{source}/attachments", f"s3://{target}/migrated/qvp", timedelta(days=2)],
        )
        assert find_process(conn, "qvp_files").kind == "files"


def held(hub: Hub, bucket: str) -> dict[str, tuple[bytes, str, object]]:
    client, found = hub.layer.client, {}
    for item in client.list_objects_v2(Bucket=bucket, Prefix="migrated/qvp/").get("Contents", []):
        got = client.get_object(Bucket=bucket, Key=item["Key"])
        found[item["Key"].removeprefix("migrated/qvp/")] = (
            got["Body"].read(),
            got["Metadata"].get("sha256"),
            item["LastModified"],
        )
    return found


def test_files_are_copied_once_with_their_sha256(hub: Hub, buckets: tuple[str, str]) -> None:
    source, target = buckets
    files = add_files(hub, source, 1, 12)
    define(hub, source, target)

    first = hub.run("qvp_files")

    assert (first.status, first.rows, first.merged.inserted) == ("succeeded", 12, 12)
    copies = held(hub, target)
    assert {path: body for path, (body, _, _) in copies.items()} == files
    assert all(sha == hashlib.sha256(body).hexdigest() for body, sha, _ in copies.values())
    again = hub.run("qvp_files")  # the overlap reads the same rows: nothing is copied again
    assert (again.rows, again.merged.inserted, again.merged.unchanged) == (12, 0, 12)
    assert {p: when for p, (_, _, when) in held(hub, target).items()} == {
        p: when for p, (_, _, when) in copies.items()
    }


def test_a_corrupt_copy_is_replaced_and_a_missing_source_object_is_logged(
    hub: Hub, buckets: tuple[str, str]
) -> None:
    source, target = buckets
    files = add_files(hub, source, 1, 5)
    files |= add_files(hub, source, 6, 1, stored=False)  # named by the table, not in the bucket
    define(hub, source, target)
    hub.layer.client.put_object(
        Bucket=target, Key="migrated/qvp/reports/0002/report 2.pdf", Body=b"half a fi"
    )

    result = hub.run("qvp_files")

    # the run fails, so that the next one covers its window again
    assert result.status == "failed"
    assert result.message.startswith("1 of 6 files not copied (5 copied, 0 already there)")
    copies = held(hub, target)
    assert {p: body for p, (body, _, _) in copies.items()} == {
        p: b for p, b in files.items() if p != "reports/0006/report 6.pdf"
    }
    with hub.target() as conn:
        key, message, process_id = conn.execute(
            "SELECT row_key ->> 'key', message, process_id FROM etl.error_log"
            " WHERE object_name = 'harness di files'"
        ).fetchone()
    assert key == "reports/0006/report 6.pdf" and "no such object" in message
    assert process_id == result.process_id

    # the object arrives late (its row was committed before its upload ended): the next run
    # copies it, and only it
    late = files["reports/0006/report 6.pdf"]
    hub.layer.client.put_object(
        Bucket=source, Key="attachments/reports/0006/report 6.pdf", Body=late
    )
    healed = hub.run("qvp_files")
    assert (healed.status, healed.merged.inserted, healed.merged.unchanged) == ("succeeded", 1, 5)
    assert {p: body for p, (body, _, _) in held(hub, target).items()} == files


def test_the_next_window_copies_only_the_new_files(hub: Hub, buckets: tuple[str, str]) -> None:
    source, target = buckets
    add_files(hub, source, 1, 3)
    with hub.target() as conn:
        conn.execute(
            "SELECT etl.define_file_process('qvp_files', 'qvp', 'app.file_storage', 'path',"
            " %s, %s)",
            [f"s3://{source}/attachments", f"s3://{target}/migrated/qvp"],
        )
    assert hub.run("qvp_files").rows == 3
    new = add_files(hub, source, 4, 2)
    with hub.source() as conn:
        conn.execute("UPDATE app.file_storage SET created_at = now() WHERE id >= 4")
    second = hub.run("qvp_files")
    assert (second.rows, second.merged.inserted) == (2, 2)
    assert set(new) <= set(held(hub, target))
