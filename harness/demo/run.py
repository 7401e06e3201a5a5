"""`harness demo`: the whole system on embedded defaults, with nothing to configure.

Starts an embedded PostgreSQL, a loopback S3 server (moto) and the DeTrack fake, deploys the SQL
package through Alembic, plays the upstream loader (permits with real PDFs, ERP shipments, a few
bad rows on purpose), runs both pipelines to completion with progress, and prints the status,
the reconciliation and where to look next. Everything it starts, it stops and removes.
"""

from __future__ import annotations

import logging
import math
import os
import secrets
import warnings
from contextlib import ExitStack

import psycopg
from psycopg import sql
from rich.console import Console

from harness import connections
from harness.config import PermitSettings
from harness.demo.detrack_fake import DetrackFake
from harness.demo.embedded import EmbeddedServer
from harness.demo.samples import sample_pdf
from harness.deploy import migrate
from harness.ops.status import read_status
from harness.permits.consumer import PermitConsumer
from harness.permits.service import progress_bar
from harness.permits.store import PermitStore
from harness.permits.upload import PermitUploader
from harness.runtime.leases import LeaseKeeper
from harness.s3 import make_client
from harness.shipments.client import DetrackClient, RetryPolicy
from harness.shipments.dispatcher import DispatchSettings, ShipmentDispatcher
from harness.shipments.limiter import SlidingWindowLimiter
from harness.shipments.service import connector
from harness.shipments.store import ShipmentStore

PERMITS, SHIPMENTS, BUCKET, API_KEY = 200, 300, "demo-permits", "demo-key"
# the demo's story and figures are its result (stdout); the progress bar is not
PROGRESS = Console(stderr=True)


def run_demo(console: Console, *, serve: bool = False, port: int = 8080) -> int:
    """The demo; with ``serve`` the embedded server stays up after it and the web console
    serves its data on 127.0.0.1:``port`` until Ctrl-C, with a demo operator login."""
    console.rule("pgferry demo")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the loopback S3 server's access log
    with ExitStack() as stack:
        database = stack.enter_context(EmbeddedServer())
        s3_endpoint = _start_s3(stack)
        detrack = stack.enter_context(DetrackFake(api_key=API_KEY, rate_limit_per_minute=6000))
        console.print(
            f"embedded PostgreSQL, S3 at {s3_endpoint}, DeTrack fake at {detrack.base_url}"
        )
        migrate.upgrade(database.url)
        console.print(f"SQL package deployed at revision {migrate.current_revision(database.url)}")
        with connections.connect(database.url, autocommit=True) as conn:
            _play_permit_loader(conn, console)
            _play_erp(conn, console)
            _run_permits(conn, s3_endpoint, console)
            _run_shipments(conn, detrack, console)
            offences = _print_status(conn, console)
            login = _demo_operator(conn) if serve else None
        if login is not None:
            _serve_console(database.url, login, port, console)
    console.print(
        "Next: `harness status`, `harness permits dead`, `harness db upgrade --sql` (the "
        "reviewed deploy script); the settings are in docs/configuration.md, the runbook in"
        " docs/operating.md."
    )
    return 0 if offences == 0 else 1


def _demo_operator(conn: psycopg.Connection) -> tuple[str, str]:
    """A login role in pgferry_operator with a random password, for the console (--serve)."""
    role, password = "demo_operator", secrets.token_urlsafe(12)
    exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]).fetchone()
    verb = "ALTER" if exists else "CREATE"
    conn.execute(
        sql.SQL("{} ROLE {} LOGIN PASSWORD {}").format(
            sql.SQL(verb), sql.Identifier(role), sql.Literal(password)
        )
    )
    conn.execute(sql.SQL("GRANT pgferry_operator TO {}").format(sql.Identifier(role)))
    return role, password


def _serve_console(url: str, login: tuple[str, str], port: int, console: Console) -> None:
    """The web console on the demo's data until Ctrl-C (uvicorn handles the signal)."""
    import uvicorn

    from harness.console.app import create_app
    from harness.console.settings import load_settings

    # the embedded server trusts local logins (it checks no password): the console is started
    # as `harness serve --trust-server-auth` would, bound to loopback only
    settings = load_settings(url, trust_server_auth=True)
    role, password = login
    console.rule("pgferry console")
    console.print(f"console: http://127.0.0.1:{port}/  (Ctrl-C stops it and the demo's servers)")
    console.print(f"log in as {role} with password {password}  (a pgferry_operator member)")
    console.print(
        "note: the embedded PostgreSQL trusts local logins and does not check passwords, so the"
        " console runs with --trust-server-auth semantics: anyone on this machine can log in as"
        " any role. For the demo only; it listens on 127.0.0.1."
    )
    uvicorn.run(
        create_app(settings), host="127.0.0.1", port=port, log_level="warning", server_header=False
    )


def _start_s3(stack: ExitStack) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    stack.callback(server.stop)
    for name, value in (("AWS_ACCESS_KEY_ID", "demo"), ("AWS_SECRET_ACCESS_KEY", "demo")):
        os.environ.setdefault(name, value)
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    make_client(endpoint).create_bucket(Bucket=BUCKET)
    return endpoint


def _play_permit_loader(conn: psycopg.Connection, console: Console) -> None:
    process_id = conn.execute("SELECT etl.start_process('permits')").fetchone()[0]
    refused = conn.execute("SELECT etl.start_process('permits')").fetchone()[0]
    rows = [(f"08-{n:09d}", 1, sample_pdf(f"Permit 08-{n:09d}", 20_000)) for n in range(PERMITS)]
    rows[10] = ("08-000000010", 2, sample_pdf("Permit 08-000000010 amended", 20_000))
    rows += [
        (None, 1, sample_pdf("no number")),
        ("08-BADPDF", 1, b"<html>not a pdf</html>"),
        ("08-EMPTY", 1, b""),
    ]
    with conn.cursor().copy(
        "COPY tps.staged_permit (process_id, permit_number, permit_generation, pdf)"
        " FROM STDIN (FORMAT binary)"
    ) as copy:
        copy.set_types(["bigint", "text", "smallint", "bytea"])
        for number, generation, pdf in rows:
            copy.write_row([process_id, number, generation, pdf])
    conn.execute("SELECT etl.end_process(%s, 'succeeded', %s)", [process_id, len(rows)])
    console.print(
        f"loader: permits run {process_id} staged {len(rows)} permits (3 bad on purpose);"
        f" an overlapping start returned {refused} (refused and logged)"
    )


def _play_erp(conn: psycopg.Connection, console: Console) -> None:
    conn.execute(
        "INSERT INTO delivery.assignment_rule (postcode_prefix, vehicle)"
        " VALUES ('V8W', 'Truck 1'), ('V9A', 'Truck 2')"
    )
    conn.execute(
        """
        INSERT INTO erp.shipment (shipment_number, job_number, ship_via, is_partial, ship_name,
               ship_address_1, ship_city, ship_postal_code, ship_country, ship_phone,
               scheduled_ship_date)
        SELECT g, 'DO-' || g, CASE WHEN g %% 3 = 0 THEN 'UPS' ELSE '10005' END, true,
               'Customer ' || g, CASE WHEN g %% 97 = 0 THEN NULL ELSE g || ' Fort St' END,
               'Victoria', CASE WHEN g %% 2 = 0 THEN 'V8W 1A1' ELSE 'V9A 2B2' END, 'Canada',
               '250-555-0100', current_date + 1
          FROM generate_series(1, %s) AS g""",
        [SHIPMENTS],
    )
    conn.execute(
        "INSERT INTO erp.package SELECT g, g, '10005', 'SKU-' || g %% 7, 'Box', 1"
        " FROM generate_series(1, %s) AS g",
        [SHIPMENTS],
    )
    recorded = conn.execute(
        "SELECT coalesce(sum(shipment_count), 0) FROM delivery.erp_change"
        " WHERE source_table = 'erp.shipment'"
    ).fetchone()[0]
    console.print(
        f"ERP: {SHIPMENTS} shipments and their packages inserted, a statement each; the"
        f" triggers recorded the {recorded} shipments that qualify, for the worker to copy"
    )


def _run_permits(conn: psycopg.Connection, s3_endpoint: str, console: Console) -> None:
    store = PermitStore(conn)
    backlog = store.backlog()
    uploader = PermitUploader(make_client(s3_endpoint), BUCKET, "permits/")
    with progress_bar(PROGRESS, backlog.claimable) as on_batch:
        consumer = PermitConsumer(store, uploader, PermitSettings(), "demo", on_batch=on_batch)
        totals = consumer.drain()
        consumer.close()
    consumed = ", ".join(map(str, totals.processes_consumed)) or "none yet"
    console.print(
        f"permits: estimated {backlog.claimable}; moved {totals.moved} (PDF in S3, SHA-256"
        f" stored), duplicates {totals.duplicates}, rejected {totals.rejected}"
        f" = {totals.moved + totals.duplicates + totals.rejected}; runs consumed: {consumed}"
        " (a run with dead letters stays open until they are requeued: `harness permits dead`)"
    )


def _run_shipments(conn: psycopg.Connection, detrack: DetrackFake, console: Console) -> None:
    client = DetrackClient(
        detrack.base_url,
        API_KEY,
        SlidingWindowLimiter(6000),
        RetryPolicy(base_seconds=0.05, cap_seconds=1),
        timeout=10,
    )
    settings = DispatchSettings()
    leases = LeaseKeeper(connector(conn.info.dsn), "shipments", settings.lease_seconds)
    dispatcher = ShipmentDispatcher(ShipmentStore(conn), client, settings, "demo", leases)
    sent = dispatcher.drain()
    for job in detrack.jobs()[:25]:  # the drivers deliver some of them
        detrack.set_status(job["do_number"], job["date"], "completed")
    for _ in range(math.ceil(len(detrack.jobs()) / 100)):  # one status search per 100 jobs
        dispatcher.poll_statuses(sent)
    dispatcher.close()
    shipped, jobs, errors = conn.execute(
        "SELECT (SELECT count(*) FROM erp.shipment WHERE shipped),"
        " (SELECT count(*) FROM delivery.job),"
        " (SELECT count(*) FROM etl.error_log WHERE object_name = 'delivery.copy_shipments')"
    ).fetchone()
    assigned = sum(1 for job in detrack.jobs() if job.get("assign_to"))
    console.print(
        f"shipments: the worker copied them: {jobs} jobs, {errors} bad rows logged (naming"
        f" shipment and field; the ERP insert had succeeded); {sent.synced} jobs created in"
        f" DeTrack in {sent.calls} bulk call(s),"
        f" {assigned} assigned to a vehicle by the rules; 25 deliveries completed by the"
        f" drivers, read back: {shipped} ERP shipments now marked shipped"
    )


def _print_status(conn: psycopg.Connection, console: Console) -> int:
    from harness.commands.status import status_table

    console.print(status_table(read_status(conn)))
    logged = conn.execute("SELECT count(*) FROM etl.error_log").fetchone()[0]
    alerts = conn.execute("SELECT count(*) FROM etl.alert").fetchone()[0]
    offences = conn.execute("SELECT count(*) FROM etl.verify_journal()").fetchone()[0]
    console.print(
        f"etl.error_log: {logged} rows (the bad rows, each naming its field);"
        f" etl.alert: {alerts} queued alert(s); journal verified: {offences} offence(s)"
    )
    return offences
