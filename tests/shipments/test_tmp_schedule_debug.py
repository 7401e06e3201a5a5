"""TEMPORARY debug harness (to be deleted): many random schedule seeds, with diagnostics."""

from __future__ import annotations

import json
import os
import random
import threading
import time

import httpx
import psycopg
import pytest

from harness.demo.detrack_fake import DetrackFake
from tests.shipments.test_shipment_schedule import SHIPMENTS, STEPS, Schedule
from tests.support.shipments import assert_detrack_matches_erp, shipment, insert_shipments

N = int(os.environ.get("DBG_N", "20"))
BASE = int(os.environ.get("DBG_BASE", str(random.SystemRandom().randrange(10**6) * 1000)))


@pytest.mark.parametrize("seed", [BASE + i for i in range(N)])
def test_debug(db_url: str, fake: DetrackFake, seed: int, monkeypatch) -> None:
    t0 = time.monotonic()
    applied: list = []
    sent: list = []
    orig_dispatch = fake._api.dispatch

    def dispatch(request):
        start = time.monotonic() - t0
        reply = orig_dispatch(request)
        applied.append((start, request.method, request.route, request.headers.get("x-dbg-id"),
                        (json.dumps(json.loads(request.raw_body))[:3000] if request.raw_body.strip() else str(request.query)), reply.status,
                        threading.current_thread().name))
        return reply

    fake._api.dispatch = dispatch
    sjitter = float(os.environ.get("DBG_SJITTER", "0"))
    cjitter = float(os.environ.get("DBG_CJITTER", "0"))
    jrng = random.Random(seed)
    if sjitter:
        orig_fake_dispatch = fake._dispatch

        def slow_dispatch(request):
            if jrng.random() < 0.2:
                time.sleep(jrng.uniform(0, sjitter))
            return orig_fake_dispatch(request)

        fake._dispatch = slow_dispatch
    orig_request = httpx.Client.request

    def request(self, method, url, **kw):
        start = time.monotonic() - t0
        body = json.dumps(kw.get("json"))[:3000] if kw.get("json") is not None else str(kw.get("params"))
        if cjitter:
            time.sleep(random.uniform(0, cjitter))
        rid = f"{time.monotonic_ns()}-{threading.get_ident()}"
        kw["headers"] = {**(kw.get("headers") or {}), "X-Dbg-Id": rid}
        body = rid + " " + body
        try:
            r = orig_request(self, method, url, **kw)
            sent.append((start, time.monotonic() - t0, method, url, body, r.status_code, threading.current_thread().name))
            return r
        except Exception as e:
            sent.append((start, time.monotonic() - t0, method, url, body, repr(e)[:80], threading.current_thread().name))
            raise

    monkeypatch.setattr(httpx.Client, "request", request)
    schedule = Schedule(random.Random(seed), db_url, fake)
    try:
        insert_shipments(
            schedule.conn,
            [shipment(scheduled_ship_date=schedule.fresh_day()) for _ in range(SHIPMENTS)],
        )
        for _ in range(STEPS):
            schedule.log.append(f"@{time.monotonic() - t0:.3f}")
            schedule.step()
        schedule.log.append(f"@{time.monotonic() - t0:.3f} drain")
        schedule.drain_healthy()
        for s_ in sent:
            if isinstance(s_[5], str):
                late = [a for a in applied if a[3] == s_[4].split(" ")[0] and a[0] > s_[1]]
                if late:
                    with open("/tmp/dbg/late.txt", "a") as out:
                        print(seed, "LATE", f"sent {s_[0]:.3f} gave up {s_[1]:.3f} applied {late[0][0]:.3f}", s_[2], s_[3], s_[5], late[0][5], f"late_by={late[0][0]-s_[1]:.3f}", s_[4][:150], file=out)
        if os.environ.get("DBG_ALWAYS"):
            with open(f"/tmp/dbg/all-{seed}.txt", "w") as out:
                print("steps", " ".join(schedule.log), file=out)
                for s in sent:
                    print("sent", s, file=out)
                for a in applied:
                    print("applied", a[:4], a[5:], a[4][:200], file=out)
        try:
            assert_detrack_matches_erp(schedule.conn, fake)
            twice = {k: n for k, n in fake.creates().items() if n > 1 + schedule.recreated[k]}
            assert not twice, f"created more than once: {twice}"
        except AssertionError as failure:
            dump(seed, schedule, fake, applied, sent, failure)
            raise
    finally:
        schedule.conn.close()


def dump(seed, schedule, fake, applied, sent, failure):
    conn = schedule.conn
    erp = {str(r[0]) for r in conn.execute(
        "SELECT e.shipment_number FROM erp.shipment e, delivery.settings s"
        " WHERE e.ship_via = ANY (s.ship_via_codes) AND (e.is_partial OR NOT s.require_partial)")}
    held = {j["tracking_number"]: j for j in fake.jobs()}
    extra, missing = set(held) - erp, erp - set(held)
    path = f"/tmp/dbg/fail-{seed}.txt"
    with open(path, "w") as out:
        p = lambda *a: print(*a, file=out)
        p("seed", seed, "failure", failure)
        p("steps", " ".join(schedule.log))
        p("extra", extra, "missing", missing)
        numbers = extra | missing
        for n in numbers:
            dos = {j["do_number"] for j in fake.jobs() if j["tracking_number"] == n}
            row = conn.execute("SELECT job_id, do_number FROM delivery.job WHERE shipment_number=%s", [int(n)]).fetchone()
            p("\n== tracking", n, "held:", [ (j["do_number"], j["date"]) for j in fake.jobs() if j["tracking_number"] == n], "job", row)
            do = row[1] if row else next(iter(dos), None)
            with conn.cursor(row_factory=psycopg.rows.dict_row) as c:
                for j in c.execute("SELECT job_id, shipment_number, do_number, delivery_date, desired, remote, remote_do_number, remote_date, sync_state, version, synced_version, attempts, last_error FROM delivery.job WHERE shipment_number=%s OR do_number=%s", [int(n), do]):
                    p("job", j)
                if row:
                    for j in c.execute("SELECT journal_id, at, step, detail FROM etl.journal WHERE pipeline='shipments' AND item_id=%s ORDER BY journal_id", [row[0]]):
                        p("journal", j)
            p("-- client sent (start, end, method, url, body, result, thread)")
            for s in sent:
                if do and do in s[4]:
                    p("sent", s)
            p("-- server applied (start, method, route, query, body, status, thread)")
            for a in applied:
                if do and (do in a[4] or do in str(a[3])):
                    p("applied", a)
            p("-- fake requests")
            for r in fake.requests():
                if do and (do in json.dumps(r.body) or do in str(r.query)):
                    p("req", r.method, r.path, r.query, r.status, r.at)
