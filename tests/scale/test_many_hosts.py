"""Workers on three hosts (network namespaces the test makes, on veth links to a bridge; the
database and S3 behind it) drain one permit backlog: every permit handled once. One host's
link is cut while it holds a batch: its leases expire, the others finish, nothing is lost or
doubled; when its link comes back, the stale worker changes nothing."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from harness.s3 import make_client
from tests.cli.support import OWN_PREFIXES
from tests.runtime.test_worker import wait_for
from tests.support.hosts import Network, database_address, network, relay
from tests.support.permits import (
    assert_each_permit_moved_once,
    load_run,
    numbered,
    object_keys,
    worker_env,
)
from tests.support.pg import connect

HOSTS = 3
LEASE_SECONDS = 4


@dataclass
class Site:
    net: Network
    db_url: str  # this namespace's
    s3_endpoint: str  # this namespace's
    bucket: str
    env: dict[str, str]  # a worker host's

    def start(self, host: int) -> subprocess.Popen:
        import os

        base = {k: v for k, v in os.environ.items() if not k.startswith(OWN_PREFIXES)}
        env = {**base, **self.env, "PGFERRY_WORKER_ID": f"host{host}"}
        argv = self.net.command(host, sys.executable, "-m", "harness", "run", "permits", "--loop")
        return subprocess.Popen(
            argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )


@pytest.fixture
def site(db_url: str, s3_endpoint: str, s3_credentials: None) -> Iterator[Site]:
    bucket = f"hosts-{uuid.uuid4().hex[:8]}"
    make_client(s3_endpoint).create_bucket(Bucket=bucket)
    conninfo = conninfo_to_dict(db_url)
    with connect(db_url) as conn:
        # as a production server is set: a session whose client vanished in a transaction
        # does not hold its rows for ever
        conn.execute(
            f"ALTER DATABASE {conninfo['dbname']} SET idle_in_transaction_session_timeout = '5s'"
        )
    s3 = urlsplit(s3_endpoint)
    with (
        network(HOSTS) as net,
        relay(net.gateway, database_address(conninfo)) as pg_port,
        relay(net.gateway, (s3.hostname or "127.0.0.1", s3.port or 80)) as s3_port,
    ):
        user = conninfo.get("user") or "postgres"
        url = f"postgresql://{user}@{net.gateway}:{pg_port}/{conninfo['dbname']}"
        env = worker_env(
            url,
            f"http://{net.gateway}:{s3_port}",
            bucket,
            batch_size=10,
            upload_concurrency=2,
            lease_seconds=LEASE_SECONDS,
        )
        yield Site(net, db_url, s3_endpoint, bucket, {**env, "PGFERRY_PIPELINES": "permits"})


def stop(worker: subprocess.Popen) -> tuple[int, str, str]:
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)
    try:
        out, err = worker.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        worker.kill()
        out, err = worker.communicate()
    return worker.returncode, out, err


def moved(conn: psycopg.Connection) -> int:
    return conn.execute("SELECT count(*) FROM permit.permit").fetchone()[0]


def test_three_hosts_drain_one_backlog_and_handle_each_permit_once(site: Site) -> None:
    permits = numbered(300)
    with connect(site.db_url) as conn:
        load_run(conn, permits)
        workers = [site.start(host) for host in range(HOSTS)]
        try:
            wait_for(lambda: moved(conn) == len(permits), 120)
        finally:
            results = [stop(worker) for worker in workers]
        assert [code for code, _, _ in results] == [0] * HOSTS, [err for *_, err in results]
        assert_each_permit_moved_once(conn, site.s3_endpoint, site.bucket, permits)
        assert conn.execute("SELECT * FROM etl.verify_journal()").fetchall() == []
    shares = [int(re.search(r"moved (\d+)", out).group(1)) for _, out, _ in results]
    assert sum(shares) == len(permits) and all(shares), shares  # each host took a part


def snapshot(conn: psycopg.Connection, site: Site) -> tuple:
    rows = conn.execute(
        "SELECT p.tps_permit_number, d.object_key, d.sha256"
        " FROM permit.permit p JOIN permit.document d USING (document_id) ORDER BY 1"
    ).fetchall()
    journal = conn.execute(
        "SELECT step, count(*) FROM etl.journal WHERE pipeline = 'permits' GROUP BY 1 ORDER BY 1"
    ).fetchall()
    return rows, journal, object_keys(site.s3_endpoint, site.bucket)


def test_a_host_cut_off_mid_batch_loses_and_doubles_nothing_and_changes_nothing_after(
    site: Site,
) -> None:
    permits = numbered(400)
    with connect(site.db_url) as conn:
        load_run(conn, permits)
        workers = [site.start(host) for host in range(HOSTS)]
        try:
            wait_for(
                lambda: conn.execute(
                    "SELECT count(*) FROM tps.staged_permit"
                    " WHERE state = 'claimed' AND lease_owner = 'host1'"
                ).fetchone()[0],
                60,
            )
            site.net.cut(1)  # host1 holds a batch: it can finish nothing of it now
            cut_at = time.monotonic()
            wait_for(lambda: moved(conn) == len(permits), 120)
            assert time.monotonic() - cut_at >= 1  # its batch waited for its lease to lapse
            survivors = [stop(workers[host]) for host in (0, 2)]
            before = snapshot(conn, site)

            site.net.restore(1)  # the stale worker is back: its late results must change nothing
            restored_at = conn.execute("SELECT now()").fetchone()[0]
            wait_for(
                lambda: conn.execute(
                    "SELECT heartbeat_at > %s FROM etl.worker WHERE worker_id = 'host1'",
                    [restored_at],
                ).fetchone()[0],
                60,
            )
            stale = stop(workers[1])
        finally:
            for worker in workers:
                if worker.poll() is None:
                    worker.kill()
                    worker.wait()
        assert [code for code, _, _ in survivors] == [0, 0], [err for *_, err in survivors]
        assert snapshot(conn, site) == before, stale[2][-3000:]
        assert_each_permit_moved_once(conn, site.s3_endpoint, site.bucket, permits)
        assert conn.execute("SELECT * FROM etl.verify_journal()").fetchall() == []
