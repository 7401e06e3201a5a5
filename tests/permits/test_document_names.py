"""A permit's document is published under one file name: the staged document name (else the
onRouteBC permit number, else the TPS one) with '.pdf' added only when it is missing, whatever
its case. The claim (the name the worker uploads under) and the move (permit.document) agree."""

from __future__ import annotations

import uuid
from urllib.parse import unquote

import psycopg
import pytest

from harness.demo.samples import sample_pdf
from harness.s3 import make_client
from tests.support.permits import StagedPermit, load_run, make_consumer

# (permit_document_name, new_permit_number) -> the file name
NAMES = [
    (("P-1.pdf", "ORBC-1"), "P-1.pdf"),
    (("P-2.PDF", "ORBC-2"), "P-2.PDF"),
    (("P-3.Pdf", "ORBC-3"), "P-3.Pdf"),
    (("P-4", "ORBC-4"), "P-4.pdf"),
    (("P-5.pdf.txt", "ORBC-5"), "P-5.pdf.txt.pdf"),
    (("P-6pdf", "ORBC-6"), "P-6pdf.pdf"),
    (("", "ORBC-7.pdf"), "ORBC-7.pdf"),
    ((None, "ORBC-8"), "ORBC-8.pdf"),
    ((None, None), "T00000009.pdf"),
]


@pytest.fixture
def bucket(s3_endpoint: str, s3_credentials: None) -> str:
    name = f"permits-{uuid.uuid4().hex[:10]}"
    make_client(s3_endpoint).create_bucket(Bucket=name)
    return name


def staged(n: int, document_name: str | None, new_number: str | None) -> StagedPermit:
    number = f"T{n:08d}"
    return StagedPermit(
        number,
        1,
        sample_pdf(number, 2000),
        extra={"permit_document_name": document_name, "new_permit_number": new_number},
    )


@pytest.mark.parametrize(("given", "expected"), NAMES, ids=[name for _, name in NAMES])
def test_the_document_name_gets_pdf_only_when_missing(
    conn: psycopg.Connection, given: tuple[str | None, str | None], expected: str
) -> None:
    assert conn.execute(
        "SELECT permit.document_file_name(%s, %s, 'T00000009')", list(given)
    ).fetchone() == (expected,)


def test_claimed_uploaded_and_recorded_names_agree(
    conn: psycopg.Connection, s3_endpoint: str, bucket: str
) -> None:
    permits = [staged(n, *given) for n, (given, _) in enumerate(NAMES, start=1)]
    load_run(conn, permits)

    totals = make_consumer(conn, s3_endpoint, bucket).drain()

    assert totals.moved == len(NAMES)
    recorded = conn.execute(
        "SELECT d.file_name FROM permit.permit p JOIN permit.document d USING (document_id)"
        " ORDER BY p.tps_permit_number"
    ).fetchall()
    assert [row[0] for row in recorded] == [name for _, name in NAMES]
    client = make_client(s3_endpoint)  # uploaded under the name the claim returned
    for permit, (_, name) in zip(permits, NAMES, strict=True):
        head = client.head_object(Bucket=bucket, Key=f"permits/{permit.permit_number}/r0.pdf")
        assert unquote(head["ContentDisposition"]) == f'attachment; filename="{name}"'
