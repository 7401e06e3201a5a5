"""Benchmark: the web console's pages on a large database, and what open pages cost the database.

Seed (set-based, one INSERT ... SELECT generate_series per table, on a fresh database at head):
--runs etl.process runs (default 10,000; one permits run is still open while its staged rows are
inserted, as tps.require_open_permit_run demands, then ended), --staged staged permits in that
run (some dead: the permits dead letters; the insert trigger journals each as 'staged'), --moved
permits with their documents, --jobs delivery.job rows (default 1,000,000; some failed or dead:
the shipments dead letters; some pending: the backlog), --journal etl.journal rows over the last
24 hours (default 1,000,000 including the trigger's 'staged' steps), --errors etl.error_log rows
(default 100,000) over several causes in one statement, then --uncompacted more (default
10,000) one statement each, whose per-statement counts (etl.error_cause) stay unfolded as no
worker's housekeeping runs here. No trigger or constraint is disabled. ERP and delivery
copy rows are not seeded (1,000,000 ERP rows would go through the ERP triggers' change queue and
show as a 1,000,000-item backlog): a shipment's lineage shows its job, request, answer and
journal, without the ERP row and the copy. VACUUM ANALYZE afterwards.

Then the console runs in this process (create_app + uvicorn on 127.0.0.1, trust_server_auth
since the bench server trusts logins): its own account is a login role in pgferry_viewer, the
user a login role in pgferry_operator, logged in over HTTP with httpx through the login form.
Every page is requested --requests times in turn, one request at a time; p50/p95/max per page
against the 150 ms target. Then --sessions sessions poll the overview's live fragment every
refresh interval for --poll-seconds, while every statement a console connection sends is counted
(see STATEMENTS below); statements/s against the target of 2/s.

    BENCH_SERVER_URL=postgresql://postgres@127.0.0.1:5432/postgres .venv/bin/python -m bench.console
"""

from __future__ import annotations

import argparse
import html
import re
import secrets
import socket
import statistics
import threading
import time
import uuid
from collections import Counter
from contextlib import contextmanager

import httpx
import psycopg
from psycopg.conninfo import make_conninfo

from bench.common import scratch_database

TARGET_MS = 150.0
TARGET_QPS = 2.0

# --------------------------------------------------------------------------------------------
# seed: one statement per table (the permits run is opened, filled and ended in three)

SEED = [
    (
        "etl.process (closed runs)",
        """
        INSERT INTO etl.process (pipeline, status, started_at, ended_at, window_from, window_to,
                                 rows_loaded, message, consumed_at)
        SELECT pl, st, s, CASE WHEN st = 'running' THEN NULL ELSE s + interval '3 minutes' END,
               s - interval '5 minutes', s, CASE WHEN st = 'succeeded' THEN g % 5000 END,
               CASE WHEN st = 'failed' THEN 'run ' || g || ' failed: source unavailable' END,
               CASE WHEN st = 'succeeded' AND g < %(runs)s - 20 THEN s + interval '4 minutes' END
          FROM generate_series(1, %(runs)s - 1) AS g,
               LATERAL (SELECT CASE WHEN g % 2 = 0 THEN 'permits' ELSE 'shipments' END AS pl,
                               CASE WHEN g % 97 = 0 THEN 'failed'
                                    WHEN g % 331 = 0 THEN 'abandoned'
                                    ELSE 'succeeded' END AS st,
                               now() - (%(runs)s - g) * interval '5 minutes' AS s) AS x
        """,
    ),
    (
        "etl.process (open permits run)",
        """
        INSERT INTO etl.process (pipeline, window_from, window_to, started_at)
        VALUES ('permits', now() - interval '5 minutes', now(), now() - interval '1 minute')
        """,
    ),
    (
        "tps.staged_permit (+ 'staged' journal by trigger)",
        """
        INSERT INTO tps.staged_permit (process_id, permit_number, new_permit_number,
                                       permit_generation, permit_type, start_date, end_date,
                                       issued_date, client_hash, plate, vin,
                                       permit_document_name, service, permit_last_modified_date,
                                       staged_at, state, attempts, last_error, dead_at)
        SELECT (SELECT max(process_id) FROM etl.process), 'P' || lpad(g::text, 8, '0'),
               'N' || g, 1, 'TROS', current_date, current_date + 30, now() - interval '2 days',
               md5(g::text), 'PL' || g % 100000, 'VIN' || g, 'permit-' || g || '.pdf', NULL,
               now() - interval '1 day', now() - (g % 1440) * interval '1 minute',
               CASE WHEN g % 10 = 0 THEN 'dead' ELSE 'pending' END,
               CASE WHEN g % 10 = 0 THEN 5 ELSE 0 END,
               CASE WHEN g % 10 = 0 THEN 'rejected: plate: value too long' END,
               CASE WHEN g % 10 = 0 THEN now() - (g % 1440) * interval '1 minute' END
          FROM generate_series(1, %(staged)s) AS g
        """,
    ),
    (
        "etl.process (end the open run)",
        """
        UPDATE etl.process SET status = 'succeeded', ended_at = now(), rows_loaded = %(staged)s
         WHERE status = 'running' AND pipeline = 'permits'
        """,
    ),
    (
        "permit.document",
        """
        INSERT INTO permit.document (bucket, object_key, sha256, size_bytes, content_type,
                                     file_name, inserted_at, updated_at)
        SELECT 'permits', 'permits/M' || lpad(g::text, 8, '0') || '.pdf',
               encode(sha256(g::text::bytea), 'hex'), 50000 + g % 1000, 'application/pdf',
               'M' || g || '.pdf', now() - interval '1 day', now() - interval '1 day'
          FROM generate_series(1, %(moved)s) AS g
        """,
    ),
    (
        "permit.permit",
        """
        INSERT INTO permit.permit (tps_permit_number, revision, permit_number, permit_type,
                                   start_date, end_date, issued_at, client_hash, plate, vin,
                                   status, document_id, source_process_id,
                                   source_staged_permit_id, inserted_at, updated_at)
        SELECT 'M' || lpad(g::text, 8, '0'), 0, 'N' || g, 'TROS', current_date, current_date + 30,
               now() - interval '2 days', md5(g::text), 'PL' || g, 'VIN' || g, 'issued', g,
               (SELECT max(process_id) FROM etl.process WHERE pipeline = 'permits'
                   AND status = 'succeeded' AND process_id < %(runs)s - 100),
               %(staged)s + g, now() - interval '1 day', now() - interval '1 day'
          FROM generate_series(1, %(moved)s) AS g
        """,
    ),
    (
        "delivery.job",
        """
        INSERT INTO delivery.job (shipment_number, do_number, delivery_date, postal_code, zone,
                                  payload, assign_to, remote, remote_do_number, remote_date,
                                  detrack_id, version, synced_version, sync_state, attempts,
                                  last_status, last_response, last_error, delivery_status,
                                  status_checked_at, inserted_at, updated_at, due_since)
        SELECT g, 'DO' || g, current_date + g % 14, 'V8' || g % 10 || ' 1A1', 'Z' || g % 7,
               jsonb_build_object('do_number', 'DO' || g, 'date', current_date + g % 14,
                                  'address', g || ' Main St', 'name', 'Customer ' || g,
                                  'phone_number', '250555' || lpad((g % 10000)::text, 4, '0')),
               'Truck ' || g % 5,
               CASE WHEN st = 'synced' THEN 'created' ELSE 'none' END,
               CASE WHEN st = 'synced' THEN 'DO' || g END,
               CASE WHEN st = 'synced' THEN current_date + g % 14 END,
               CASE WHEN st = 'synced' THEN 'dt' || g END,
               1, CASE WHEN st = 'synced' THEN 1 ELSE 0 END, st,
               CASE WHEN st IN ('failed', 'dead') THEN 8 ELSE 1 END,
               CASE WHEN st = 'synced' THEN 200 WHEN st IN ('failed', 'dead') THEN 422 END,
               CASE WHEN st IN ('synced', 'failed', 'dead')
                    THEN jsonb_build_object('data', jsonb_build_object('id', 'dt' || g)) END,
               CASE WHEN st IN ('failed', 'dead') THEN 'HTTP 422: address is invalid' END,
               CASE WHEN st = 'synced' THEN 'dispatched' END,
               CASE WHEN st = 'synced' THEN now() - (g % 600) * interval '1 second' END,
               t, t, CASE WHEN st = 'pending' THEN t END
          FROM generate_series(1, %(jobs)s) AS g,
               LATERAL (SELECT CASE WHEN g % 2000 = 0 THEN 'dead'
                                    WHEN g % 2000 = 1000 THEN 'failed'
                                    WHEN g > %(jobs)s - 500 THEN 'pending'
                                    ELSE 'synced' END AS st,
                               now() - (%(jobs)s - g) * interval '2 seconds' AS t) AS x
        """,
    ),
    (
        "etl.journal",
        """
        INSERT INTO etl.journal (pipeline, item_id, step, at, process_id, detail)
        SELECT CASE WHEN g % 3 = 0 THEN 'permits' ELSE 'shipments' END,
               CASE WHEN g % 3 = 0 THEN %(staged)s + 1 + g % %(moved)s ELSE 1 + g % %(jobs)s END,
               CASE WHEN g % 3 = 0 THEN (ARRAY['uploaded', 'moved', 'duplicate'])[1 + g % 3]
                    ELSE (ARRAY['created', 'updated', 'created', 'send_failed'])[1 + g % 4] END,
               now() - (%(journal)s - g) * (interval '24 hours' / %(journal)s),
               CASE WHEN g % 3 = 0 THEN (SELECT max(process_id) FROM etl.process
                                          WHERE pipeline = 'permits' AND status = 'succeeded'
                                            AND process_id < %(runs)s - 100) END,
               CASE WHEN g % 4 = 3 THEN jsonb_build_object('http_status', 503) END
          FROM generate_series(1, %(journal)s - %(staged)s) AS g
        """,
    ),
    (
        "etl.error_log",
        """
        INSERT INTO etl.error_log (logged_at, object_name, table_name, row_key, row_payload,
                                   sqlstate, message, detail, process_id)
        SELECT now() - (%(errors)s - g) * (interval '30 days' / %(errors)s), o, t,
               jsonb_build_object('id', g), jsonb_build_object('id', g, 'note', 'row ' || g),
               (ARRAY['22001', '23502', '22023', 'P0001', '23505'])[1 + g % 5],
               CASE WHEN o = 'permit.claim_batch'
                    THEN 'rejected: ' || (ARRAY['plate', 'vin', 'start_date'])[1 + g % 3]
                         || ': invalid value'
                    ELSE 'value too long for type character varying(15)' END,
               CASE WHEN o = 'etl.merge_table'
                    THEN 'field: '
                         || (ARRAY['ship_postal_code', 'ship_phone', 'ship_email'])[1 + g % 3]
               END,
               1 + g % (%(runs)s - 1)
          FROM generate_series(1, %(errors)s) AS g,
               LATERAL (SELECT (ARRAY['etl.merge_table', 'permit.claim_batch',
                                      'delivery.record_results', 'delivery.upsert_jobs'])[1 + g % 4]
                               AS o,
                               (ARRAY['delivery.shipment', 'tps.staged_permit', 'delivery.job',
                                      'delivery.job'])[1 + g % 4] AS t) AS y
        """,
    ),
    (
        "etl.error_log, one statement per error (not compacted)",
        # as etl.log_error writes them: each INSERT leaves its own etl.error_cause row until a
        # worker's housekeeping folds them; these stay unfolded (no worker runs here), the
        # worst a failures page meets
        """
        DO $$
        BEGIN
            FOR g IN 1..%(uncompacted)s LOOP
                INSERT INTO etl.error_log (logged_at, object_name, sqlstate, message, detail)
                VALUES (now() - g * (interval '24 hours' / %(uncompacted)s),
                        (ARRAY['etl.merge_table', 'delivery.upsert_jobs'])[1 + g % 2],
                        (ARRAY['22001', '23502'])[1 + g % 2],
                        'value too long for type character varying(15)',
                        'field: ' || (ARRAY['ship_postal_code', 'ship_phone'])[1 + g % 2]);
            END LOOP;
        END
        $$
        """,
    ),
]

COUNTS_SQL = """
SELECT (SELECT count(*) FROM delivery.job), (SELECT count(*) FROM etl.error_log),
       (SELECT count(*) FROM etl.process), (SELECT count(*) FROM etl.journal),
       (SELECT count(*) FROM etl.journal WHERE at >= now() - interval '24 hours'),
       (SELECT count(*) FROM tps.staged_permit WHERE state = 'dead'),
       (SELECT count(*) FROM delivery.job WHERE sync_state IN ('failed', 'dead')),
       (SELECT count(*) FROM permit.permit)
"""


def seed(url: str, sizes: dict[str, int]) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for label, sql in SEED:
            started = time.perf_counter()
            text = re.sub(r"%\((\w+)\)s", lambda m: str(int(sizes[m.group(1)])), sql)
            with conn.transaction():
                conn.execute(text.encode())
            print(f"  seeded {label:<50} {time.perf_counter() - started:6.1f} s")
        started = time.perf_counter()
        conn.execute("VACUUM ANALYZE")
        print(f"  VACUUM ANALYZE {'':<44} {time.perf_counter() - started:6.1f} s")
        jobs, errors, runs, journal, journal_24h, dead_p, dead_s, permits = conn.execute(
            COUNTS_SQL
        ).fetchone()
    print(
        f"seeded: {jobs:,} delivery jobs, {errors:,} error_log rows, {runs:,} runs,"
        f" {journal:,} journal rows ({journal_24h:,} in the last 24 h), {permits:,} moved permits,"
        f" dead letters {dead_p:,} permits + {dead_s:,} shipments"
    )


# --------------------------------------------------------------------------------------------
# STATEMENTS: every statement a console connection sends, counted in this process. The console
# sends all its SQL through psycopg Cursor.execute (Connection.execute calls it); the wrapper
# counts the calls made on connections whose application_name is the console's
# ('pgferry-console' for users, 'pgferry-console-snapshot' for its own account). A snapshot is
# one REPEATABLE READ transaction of several statements; each counts, and so do BEGIN/COMMIT
# (psycopg sends them itself, so they are counted separately from pg_stat_database's
# xact_commit, which is read as a cross-check).

statement_counts: Counter[str] = Counter()
_count_lock = threading.Lock()


def install_statement_counter() -> None:
    original = psycopg.Cursor.execute

    def counted(self, query, params=None, **kwargs):
        try:
            app = self.connection.info.parameter_status("application_name") or ""
        except Exception:
            app = ""
        if app.startswith("pgferry-console"):
            with _count_lock:
                statement_counts[app] += 1
        return original(self, query, params, **kwargs)

    psycopg.Cursor.execute = counted  # type: ignore[method-assign]


# --------------------------------------------------------------------------------------------
# the console in this process


@contextmanager
def serve(settings):
    import uvicorn

    from harness.console.app import create_app

    app = create_app(settings)
    # proto IPPROTO_TCP, as uvicorn.run(host, port) (`harness serve`) makes it: asyncio sets
    # TCP_NODELAY only on sockets whose proto is IPPROTO_TCP, and without it every keep-alive
    # response waits ~40 ms (Nagle against the client's delayed ACK: headers and body are two
    # writes). A socket made with proto 0 measured 44 ms for an empty page here.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


def log_in(base: str, role: str, password: str) -> httpx.Client:
    client = httpx.Client(base_url=base, headers={"Accept": "text/html"}, timeout=30)
    form = client.get("/login")
    token = re.search(r'name="login_token" value="([^"]+)"', form.text).group(1)
    answer = client.post("/login", data={"login_token": token, "role": role, "password": password})
    if answer.status_code != 303:
        raise SystemExit(f"login failed: {answer.status_code} {answer.text[:300]}")
    return client


def href(text: str, pattern: str) -> str:
    found = re.search(pattern, text)
    if not found:
        raise SystemExit(f"no link matching {pattern!r} on the page")
    return html.unescape(found.group(1))


def time_page(client: httpx.Client, path: str, n: int) -> list[float]:
    client.get(path)  # warm: the first request of a page opens nothing new afterwards
    times = []
    for _ in range(n):
        started = time.perf_counter()
        answer = client.get(path)
        times.append((time.perf_counter() - started) * 1000)
        if answer.status_code != 200:
            raise SystemExit(f"{path}: HTTP {answer.status_code}: {answer.text[:300]}")
    return times


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def xact_commits(url: str, database: str) -> int:
    """Read from the server's postgres database, so the reading is no transaction of the
    bench database's."""
    with psycopg.connect(make_conninfo(url, dbname="postgres"), autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        return conn.execute(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s",
            [database],
        ).fetchone()[0]


def poll(client: httpx.Client, seconds: float, every: float, errors: list) -> None:
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            answer = client.get("/overview/live", headers={"HX-Request": "true"})
            errors.append(answer.status_code)
            time.sleep(every)
    finally:
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--errors", type=int, default=100_000)
    parser.add_argument(
        "--uncompacted", type=int, default=10_000, help="errors logged one statement each"
    )
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--journal", type=int, default=1_000_000)
    parser.add_argument("--staged", type=int, default=20_000)
    parser.add_argument("--moved", type=int, default=50_000)
    parser.add_argument("--requests", type=int, default=40, help="requests per page")
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--poll-seconds", type=float, default=65)
    args = parser.parse_args()
    sizes = {
        k: getattr(args, k)
        for k in ("jobs", "errors", "uncompacted", "runs", "journal", "staged", "moved")
    }

    install_statement_counter()
    from harness.console.settings import ConsoleSettings

    with scratch_database() as url:
        database = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
        started = time.perf_counter()
        seed(url, sizes)
        print(f"seed and VACUUM ANALYZE: {time.perf_counter() - started:.0f} s")

        suffix = uuid.uuid4().hex[:8]
        service, user = f"pgferry_bench_console_{suffix}", f"pgferry_bench_user_{suffix}"
        password = secrets.token_urlsafe(16)
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(f"CREATE ROLE {service} LOGIN PASSWORD '{password}'")
            admin.execute(f"GRANT pgferry_viewer TO {service}")
            admin.execute(f"CREATE ROLE {user} LOGIN PASSWORD '{password}'")
            admin.execute(f"GRANT pgferry_operator TO {user}")
            permit = admin.execute(
                "SELECT tps_permit_number FROM permit.permit ORDER BY permit_id"
                " OFFSET (SELECT count(*) / 2 FROM permit.permit) LIMIT 1"
            ).fetchone()[0]
            shipment = admin.execute(
                "SELECT do_number FROM delivery.job WHERE sync_state = 'synced'"
                " ORDER BY job_id DESC LIMIT 1 OFFSET 1000"
            ).fetchone()[0]
        try:
            settings = ConsoleSettings(
                database_url=make_conninfo(url, user=service, password=password),
                trust_server_auth=True,
            )
            with serve(settings) as (base, app):
                run_pages(base, app, user, password, permit, shipment, args)
                measure_polling(base, app, user, password, url, database, settings, args)
                show_timeouts(app, settings)
        finally:
            with psycopg.connect(url, autocommit=True) as admin:
                # the console closed its connections when it stopped; end any left over
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE usename IN (%s, %s)",
                    [service, user],
                )
                admin.execute(f"DROP ROLE IF EXISTS {user}")
                admin.execute(f"DROP ROLE IF EXISTS {service}")


def run_pages(base, app, user, password, permit, shipment, args) -> None:
    client = log_in(base, user, password)
    runs_html = client.get("/runs").text
    older = href(runs_html, r'<a href="(/runs\?[^"]*before=[^"]+)" rel="next">Older</a>')
    run_id = int(href(runs_html, r'<a href="/runs/(\d+)">'))
    failures_html = client.get("/failures").text
    cause = href(failures_html, r'href="(/failures\?object=[^"]+)"')
    pages = [
        ("overview", "/"),
        ("overview live fragment", "/overview/live"),
        ("runs", "/runs"),
        ("runs page 2 (Older)", older),
        (f"run {run_id}", f"/runs/{run_id}"),
        ("failures", "/failures"),
        ("failures by a cause", cause),
        ("dead letters", "/failures/dead-letters"),
        (f"lineage permit {permit}", f"/lineage?permit={permit}"),
        ("journal (operator actions)", "/journal"),
        (f"lineage shipment {shipment}", f"/lineage?shipment={shipment}"),
    ]
    print(
        f"\npages: {args.requests} sequential requests each after one warm-up, one logged-in"
        f" session (pgferry_operator member), page size {app.state.settings.page_size}"
    )
    print(f"{'page':<34} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'p95/150':>8}")
    worst = 0.0
    for label, path in pages:
        times = time_page(client, path, args.requests)
        high = p95(times)
        worst = max(worst, high / TARGET_MS)
        flag = "" if high <= TARGET_MS else "  MISSES"
        print(
            f"{label:<34} {statistics.median(times):8.1f} {high:8.1f} {max(times):8.1f}"
            f" {high / TARGET_MS:8.2f}{flag}"
        )
    print(f"worst p95 / target: {worst:.2f}   (target <= 1.00: every page p95 <= 150 ms)")
    print(f"  cause link: {cause}\n  older link: {older}")
    client.close()


def measure_polling(base, app, user, password, url, database, settings, args) -> None:
    every = settings.refresh_seconds
    print(
        f"\nten open pages: {args.sessions} sessions, each polling /overview/live every"
        f" {every:g} s (the page's hx-trigger) for {args.poll_seconds:g} s; snapshot refresh"
        f" every {every:g} s, membership re-read every {settings.role_recheck_seconds:g} s"
    )
    # the sessions log in first: a login is not part of an open page's steady cost
    clients = [log_in(base, user, password) for _ in range(args.sessions)]
    time.sleep(11)  # PostgreSQL 15 backends flush their statistics within 10 s of going idle
    with _count_lock:
        statement_counts.clear()
    before_x = xact_commits(url, database)
    t0 = time.monotonic()
    errors: list[int] = []
    threads = [
        threading.Thread(target=poll, args=(client, args.poll_seconds, every, errors))
        for client in clients
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - t0
    with _count_lock:
        counted = dict(statement_counts)
    polls = sum(1 for code in errors if code == 200)
    errors = [code for code in errors if code != 200]
    for client in clients:
        client.close()
    time.sleep(11)
    after_x = xact_commits(url, database)
    users = counted.get("pgferry-console", 0)
    snapshot = counted.get("pgferry-console-snapshot", 0)
    total = users + snapshot
    xacts = after_x - before_x
    print(
        f"statements sent by console connections in {elapsed:.1f} s ({polls} polls answered 200):"
        f" {total} (snapshot account {snapshot}, the {args.sessions} user sessions {users}:"
        f" membership re-reads)"
    )
    print(
        "  counted in this process: every psycopg Cursor.execute on a connection whose"
        " application_name is pgferry-console*, BEGIN/COMMIT of the snapshot not counted"
    )
    print(
        f"  cross-check, pg_stat_database xact_commit+xact_rollback delta of the bench database"
        f" over the window (+ up to 11 s of the snapshot refresh after it; a snapshot is one"
        f" transaction of several statements): {xacts} transactions"
        f" = {xacts / (elapsed + 11):.2f}/s"
    )
    print(
        f"queries/s with {args.sessions} open pages: {total / elapsed:.2f}/s   ratio to the"
        f" 2/s target: {total / elapsed / TARGET_QPS:.2f}"
    )
    if errors:
        print(f"  polls that did not answer 200: {len(errors)} ({Counter(errors)})")


def show_timeouts(app, settings) -> None:
    keeper = app.state.keeper
    with keeper._lock:  # the snapshot's own connection, between two refreshes
        own = (
            keeper._connection.execute("SHOW statement_timeout").fetchone()[0]
            if keeper._connection is not None
            else "(no connection open)"
        )
    user_values = set()
    for session in list(app.state.store._sessions.values()):
        with session.connections.connection() as connection:
            user_values.add(connection.execute("SHOW statement_timeout").fetchone()[0])
    print(
        f"\nstatement_timeout on the console's connections: snapshot connection {own},"
        f" user connections {sorted(user_values)} (setting {settings.statement_timeout_ms} ms;"
        f" SHOW run on the app's own open connections)"
    )


if __name__ == "__main__":
    main()
