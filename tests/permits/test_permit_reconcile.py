"""`harness permits reconcile --delete` against permits moving at the same time: an object a
re-delivered permit was just verified against (412, equal checksum) must never be deleted
under the document that records it."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import psycopg
import pytest
from psycopg.types.json import Jsonb

from harness.demo.samples import sample_pdf
from harness.permits import reconcile as reconcile_module
from harness.permits.reconcile import reconcile
from harness.permits.store import ClaimedPermit, PermitStore
from harness.permits.upload import PermitUploader
from harness.runtime.outcome import EXIT_UNREACHABLE, permit_outcome
from harness.s3 import make_client
from tests.support.permits import (
    Gate,
    StagedPermit,
    assert_each_permit_moved_once,
    in_thread,
    load_run,
    make_consumer,
    object_keys,
    result_of,
    stop_after_claims,
    waits_for_lock,
)
from tests.support.pg import connect

KEY = "permits/AGAIN/r0.pdf"
HOUR = timedelta(hours=1)


@pytest.fixture
def bucket(s3_endpoint: str, s3_credentials: None) -> str:
    name = f"permits-{uuid.uuid4().hex[:10]}"
    make_client(s3_endpoint).create_bucket(Bucket=name)
    return name


def orphaned_object(endpoint: str, bucket: str) -> StagedPermit:
    """The object of an earlier delivery whose permit never moved (its run was purged): an
    orphan. The same permit, same bytes, is about to be delivered again."""
    permit = StagedPermit("AGAIN", 1, sample_pdf("AGAIN", 2000))
    earlier = ClaimedPermit(0, "AGAIN", 0, "AGAIN.pdf", permit.pdf, "upload", None)
    PermitUploader(make_client(endpoint), bucket, "permits/").upload(earlier)
    return permit


@pytest.mark.parametrize("move", ["while_deleting", "after_deleting"])
def test_reconcile_never_deletes_the_object_a_redelivered_permit_moves_with(
    db_url: str, s3_endpoint: str, bucket: str, move: str
) -> None:
    """Reconcile has decided the object is an orphan and is about to delete it when the permit
    is delivered again and uploaded (412, same checksum). Its move comes either while the
    object is being deleted, or after: both times it is refused and uploaded again."""
    permit = orphaned_object(s3_endpoint, bucket)
    with connect(db_url) as conn, connect(db_url) as reconciler:
        client = make_client(s3_endpoint)
        deleting = Gate(client, "before-call.s3.DeleteObject")
        uploader = PermitUploader(client, bucket, "permits/")
        r_thread, r_outcome = in_thread(
            lambda: reconcile(reconciler, client, uploader, delete=True, min_age=timedelta(0))
        )
        assert deleting.entered.wait(30)  # the orphan is decided on and about to go

        load_run(conn, [permit])
        consumer = make_consumer(conn, s3_endpoint, bucket, retry_base_seconds=3600)
        if move == "while_deleting":
            during = consumer.drain()
            deleting.released.set()
            cleaned = result_of(r_thread, r_outcome)
        else:
            verified = Gate(consumer.uploader.client, "after-call.s3.HeadObject")
            c_thread, c_outcome = in_thread(consumer.drain)
            assert verified.entered.wait(30)  # the upload met the doomed object: same checksum
            deleting.released.set()
            cleaned = result_of(r_thread, r_outcome)  # deleted, tombstone cleared
            verified.released.set()
            during = result_of(c_thread, c_outcome)

        assert cleaned.deleted == [KEY]
        assert (during.moved, during.upload_failures) == (0, 1)
        conn.execute("UPDATE tps.staged_permit SET next_attempt_at = now()")  # the wait passed
        after = consumer.drain()  # a new claim: the object is written afresh
        consumer.close()
        assert after.moved == 1
        assert_each_permit_moved_once(conn, s3_endpoint, bucket, [permit])
        assert reconcile(conn, client, uploader).clean


def test_a_move_in_progress_keeps_its_object_from_being_tombstoned(
    db_url: str, s3_endpoint: str, bucket: str
) -> None:
    """The move's transaction is open (its document not committed) when reconcile asks whether
    the key is still an orphan: the question waits for the move and the answer is no."""
    permit = orphaned_object(s3_endpoint, bucket)
    with connect(db_url) as conn, connect(db_url) as mover, connect(db_url) as reconciler:
        load_run(conn, [permit])
        store = PermitStore(mover)
        claim = store.claim("mover", 1, HOUR, 5)
        uploader = PermitUploader(make_client(s3_endpoint), bucket, "permits/")
        uploads = [uploader.upload(p) for p in claim.to_upload]  # 412, same checksum
        with mover.transaction():
            assert store.move(claim.token, uploads, HOUR).moved == 1
            thread, outcome = in_thread(
                lambda: reconciler.execute(
                    "SELECT * FROM permit.tombstone_orphans(%s, %s)",
                    [bucket, Jsonb([{"object_key": KEY}])],
                ).fetchall()
            )
            asked_first = not waits_for_lock(conn, reconciler.info.backend_pid, thread)
        assert not asked_first, "the orphan check did not wait for the move"
        assert result_of(thread, outcome) == []  # the move committed first: not an orphan
        assert reconcile(conn, make_client(s3_endpoint), uploader, delete=True).clean
        assert_each_permit_moved_once(conn, s3_endpoint, bucket, [permit])


def tombstone(conn: psycopg.Connection, bucket: str, age: str = "0") -> None:
    """What `reconcile --delete` does before deleting KEY; ``age``: how long ago."""
    orphan = [{"object_key": KEY, "permit_number": "AGAIN", "permit_generation": 1}]
    rows = conn.execute(
        "SELECT * FROM permit.tombstone_orphans(%s, %s)", [bucket, Jsonb(orphan)]
    ).fetchall()
    assert rows == [(KEY,)]
    conn.execute("UPDATE permit.object_tombstone SET created_at = created_at - %s::interval", [age])


def test_a_tombstone_a_killed_reconcile_left_expires_and_the_permit_moves(
    db_url: str, s3_endpoint: str, bucket: str
) -> None:
    """Reconcile tombstoned the orphan and was killed before deleting it or clearing the
    tombstone. Once the tombstone is older than its lifetime, the permit delivered again moves
    instead of being refused on every run."""
    permit = orphaned_object(s3_endpoint, bucket)
    with connect(db_url) as conn:
        tombstone(conn, bucket, age="10 minutes 1 second")
        load_run(conn, [permit])
        stop = threading.Event()
        consumer = make_consumer(
            conn, s3_endpoint, bucket, stop=stop, on_batch=stop_after_claims(stop, 20)
        )
        totals = consumer.drain()
        consumer.close()

        assert (totals.moved, totals.upload_failures) == (1, 0)
        assert_each_permit_moved_once(conn, s3_endpoint, bucket, [permit])


def test_a_move_refused_by_a_tombstone_counts_an_attempt_and_waits_until_it_can_expire(
    db_url: str, s3_endpoint: str, bucket: str
) -> None:
    """A reconcile run is deleting the key (its tombstone is fresh). With no retry delay the
    refused permit must not be claimed, uploaded and refused again in a loop: it waits until the
    tombstone can expire, and the refusal counts as an attempt, so the run's outcome shows the
    permit waiting. Once reconcile clears the tombstone, the permit moves."""
    permit = orphaned_object(s3_endpoint, bucket)
    with connect(db_url) as conn:
        tombstone(conn, bucket)
        load_run(conn, [permit])
        stop = threading.Event()
        consumer = make_consumer(
            conn, s3_endpoint, bucket, stop=stop, on_batch=stop_after_claims(stop, 20)
        )
        refused = consumer.drain()
        row = conn.execute(
            "SELECT s.attempts, s.next_attempt_at >= t.created_at + permit.tombstone_lifetime()"
            "  FROM tps.staged_permit AS s, permit.object_tombstone AS t"
        ).fetchone()
        outcome = permit_outcome(conn, refused.upload_failures)
        assert (refused.moved, refused.upload_failures, refused.claim_calls < 20) == (0, 1, True)
        assert row == (1, True)
        assert outcome.code == EXIT_UNREACHABLE and "1 permit(s) wait" in outcome.lines[0]

        conn.execute("SELECT permit.clear_tombstones(%s, %s)", [bucket, [KEY]])
        conn.execute("UPDATE tps.staged_permit SET next_attempt_at = now()")  # the wait passed
        after = consumer.drain()
        consumer.close()
        assert after.moved == 1
        assert_each_permit_moved_once(conn, s3_endpoint, bucket, [permit])


def test_reconcile_stops_deleting_before_its_tombstones_could_expire(
    db_url: str, s3_endpoint: str, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tombstone expires after its lifetime whether or not its run still deletes; so a run
    that is still deleting at DELETE_WITHIN (here: at once) stops, clears its tombstones and
    leaves the rest of its orphans to the next run."""
    orphaned_object(s3_endpoint, bucket)
    monkeypatch.setattr(reconcile_module, "DELETE_WITHIN", timedelta(0))
    with connect(db_url) as conn:
        client = make_client(s3_endpoint)
        uploader = PermitUploader(client, bucket, "permits/")
        result = reconcile(conn, client, uploader, delete=True, min_age=timedelta(0))

        assert (result.orphans, result.deleted) == ([KEY], [])
        assert object_keys(s3_endpoint, bucket) == [KEY]
        cleared = conn.execute("SELECT cleared_at IS NOT NULL FROM permit.object_tombstone")
        assert cleared.fetchall() == [(True,)]
