"""The DeTrack fake over real HTTP: the dispatcher's tests trust it, so it is tested on its own.

No mocks and no sleeps: the rate limit runs on a hand-advanced clock, and every fault is
observable the moment the client gets its answer (or its error).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from harness.demo.detrack_fake import HTML_500, DetrackFake, Fault

KEY = "test-key"
DAY = "2025-03-14"


class FakeClock:
    """A clock the test moves by hand, so a minute of rate limiting takes no time."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fake(clock: FakeClock) -> Iterator[DetrackFake]:
    with DetrackFake(api_key=KEY, clock=clock) as server:
        yield server


@pytest.fixture
def client(fake: DetrackFake) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fake.base_url, headers={"X-API-KEY": KEY}, timeout=5) as http:
        yield http


def job(do_number: str, date: str = DAY, **fields: Any) -> dict[str, Any]:
    return {"do_number": do_number, "date": date, "address": "1 Main St, Singapore", **fields}


def create(client: httpx.Client, do_number: str, date: str = DAY, **fields: Any) -> httpx.Response:
    return client.post("/dn/jobs", json={"data": job(do_number, date, **fields)})


def codes(response: httpx.Response) -> list[tuple[str, list[str]]]:
    return [(error["field"], error["codes"]) for error in response.json()["errors"]]


# auth, routing, bad input


def test_wrong_or_missing_key_is_401_and_recorded(fake: DetrackFake) -> None:
    with httpx.Client(base_url=fake.base_url) as anonymous:
        missing = anonymous.get("/dn/jobs")
        wrong = anonymous.post("/dn/jobs", json={"data": job("D1")}, headers={"X-API-KEY": "no"})

    assert (missing.status_code, wrong.status_code) == (401, 401)
    assert wrong.json() == {"code": "unauthorized", "message": "Unauthorized"}
    assert fake.jobs() == []
    assert [(r.method, r.path, r.status) for r in fake.requests()] == [
        ("GET", "/api/v2/dn/jobs", 401),
        ("POST", "/api/v2/dn/jobs", 401),
    ]


def test_malformed_json_is_400_and_unknown_route_is_404(client: httpx.Client) -> None:
    bad = client.post(
        "/dn/jobs", content=b'{"data": {', headers={"Content-Type": "application/json"}
    )
    unknown = client.get("/dn/nothing-here")

    assert bad.status_code == 400
    assert bad.json()["code"] == "bad_request"
    assert unknown.status_code == 404
    assert unknown.json()["code"] == "not_found"


# create


def test_create_answers_201_with_location_and_server_fields(
    fake: DetrackFake, client: httpx.Client
) -> None:
    response = create(client, "DO-1", instructions="leave at door")

    assert response.status_code == 201
    assert response.headers["Location"] == f"{fake.base_url}/dn/jobs/DO-1"
    created = response.json()["data"]
    assert created["instructions"] == "leave at door"
    assert created["type"] == "Delivery"
    assert created["status"] == "info_recv"
    assert created["tracking_status"] == "Info received"
    assert len(created["id"]) == 24 and int(created["id"], 16) >= 0
    assert created["detrack_number"].startswith("DET") and len(created["detrack_number"]) == 10
    assert created["created_at"]
    assert fake.job("DO-1", DAY) == created
    assert fake.create_count("DO-1", DAY) == 1


def test_detrack_numbers_increase(client: httpx.Client) -> None:
    first = create(client, "DO-1").json()["data"]["detrack_number"]
    second = create(client, "DO-2").json()["data"]["detrack_number"]

    assert int(second[3:]) == int(first[3:]) + 1


def test_duplicate_is_already_taken_but_another_date_is_not(
    fake: DetrackFake, client: httpx.Client
) -> None:
    assert create(client, "DO-1").status_code == 201
    duplicate = create(client, "DO-1")
    other_day = create(client, "DO-1", "2025-03-15")

    assert duplicate.status_code == 422
    assert duplicate.json()["code"] == "validation_failed"
    assert duplicate.json()["message"] == "Validation failed"
    assert codes(duplicate) == [("do_number", ["is already taken"])]
    assert other_day.status_code == 201
    assert fake.create_count("DO-1", DAY) == 1


def test_blank_fields_and_bad_date_are_validation_errors(
    fake: DetrackFake, client: httpx.Client
) -> None:
    blank = create(client, "DO-1", address="  ")
    bad_date = create(client, "DO-2", "14/03/2025")
    no_do = client.post("/dn/jobs", json={"data": {"date": DAY, "address": "x"}})

    assert blank.status_code == 422
    assert codes(blank) == [("address", ["cannot be blank"])]
    assert codes(bad_date) == [("date", ["is invalid"])]
    assert codes(no_do) == [("do_number", ["cannot be blank"])]
    assert fake.jobs() == []


# bulk create


def test_bulk_create_is_not_atomic(fake: DetrackFake, client: httpx.Client) -> None:
    create(client, "DUP")
    batch = [job("B-1"), job("DUP"), job("B-2")]

    response = client.post("/dn/jobs/bulk", json={"data": batch})

    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "validation_failed"
    assert [created["do_number"] for created in body["data"]] == ["B-1", "B-2"]
    assert body["errors"] == [
        {**job("DUP"), "errors": [{"field": "do_number", "codes": ["is already taken"]}]}
    ]
    assert fake.job("B-1", DAY) is not None
    assert fake.job("B-2", DAY) is not None
    assert fake.create_count("DUP", DAY) == 1


def test_bulk_create_all_good_is_200(fake: DetrackFake, client: httpx.Client) -> None:
    response = client.post("/dn/jobs/bulk", json={"data": [job("B-1"), job("B-2")]})

    assert response.status_code == 200
    assert [created["do_number"] for created in response.json()["data"]] == ["B-1", "B-2"]
    assert len(fake.jobs()) == 2


def test_bulk_over_100_is_rejected_whole(fake: DetrackFake, client: httpx.Client) -> None:
    response = client.post("/dn/jobs/bulk", json={"data": [job(f"B-{i}") for i in range(101)]})

    assert response.status_code == 422
    assert response.json()["code"] == "invalid_data"
    assert fake.jobs() == []


# show


def test_show_by_do_number(client: httpx.Client) -> None:
    create(client, "DO-1", "2025-03-13")
    create(client, "DO-1", DAY, instructions="latest")

    exact = client.get("/dn/jobs/show/", params={"do_number": "DO-1", "date": "2025-03-13"})
    latest = client.get("/dn/jobs/show/", params={"do_number": "DO-1"})
    missing = client.get("/dn/jobs/show/", params={"do_number": "NOPE"})
    wrong_type = client.get("/dn/jobs/show/", params={"do_number": "DO-1", "type": "Collection"})

    assert exact.status_code == 200
    assert exact.json()["data"]["date"] == "2025-03-13"
    assert latest.json()["data"]["instructions"] == "latest"
    assert missing.status_code == 404
    assert missing.json() == {"code": "not_found", "message": "Job not found"}
    assert wrong_type.status_code == 404


# update


def test_update_by_do_number_merges_fields(fake: DetrackFake, client: httpx.Client) -> None:
    create(client, "DO-1", instructions="old", remarks="kept")

    by_body = client.put(
        "/dn/jobs/update", json={"do_number": "DO-1", "date": DAY, "data": {"instructions": "new"}}
    )
    by_path = client.put(f"/dn/jobs/DO-1/{DAY}", json={"data": {"assign_to": "Nina"}})
    missing = client.put("/dn/jobs/update", json={"do_number": "NOPE", "data": {"remarks": "x"}})

    assert by_body.status_code == 200
    assert by_body.json()["data"]["instructions"] == "new"
    assert by_path.status_code == 200
    stored = fake.job("DO-1", DAY)
    assert stored is not None
    assert (stored["instructions"], stored["remarks"], stored["assign_to"]) == (
        "new",
        "kept",
        "Nina",
    )
    assert missing.status_code == 404


def test_batch_update_ok_then_partial_not_found(fake: DetrackFake, client: httpx.Client) -> None:
    create(client, "U-1")
    create(client, "U-2")

    ok = client.put(
        "/dn/jobs",
        json={"data": [{"do_number": "U-1", "date": DAY, "data": {"remarks": "one"}}]},
    )
    partial = client.put(
        "/dn/jobs",
        json={
            "data": [
                {"do_number": "U-2", "date": DAY, "data": {"remarks": "two"}},
                {"do_number": "GONE", "date": DAY, "data": {"remarks": "x"}},
            ]
        },
    )

    assert ok.status_code == 200
    assert ok.json() == {
        "data": [{"do_number": "U-1", "date": DAY, "type": "Delivery", "ok": True}]
    }
    assert partial.status_code == 422
    body = partial.json()
    assert body["code"] == "update_failed"
    assert [flag["ok"] for flag in body["data"]["data"]] == [True, False]
    assert body["errors"] == [
        {"do_number": "GONE", "date": DAY, "type": "Delivery", "codes": ["not_found"]}
    ]
    assert fake.job("U-1", DAY)["remarks"] == "one"  # type: ignore[index]
    assert fake.job("U-2", DAY)["remarks"] == "two"  # type: ignore[index]


# delete


def test_delete_single_and_batch(fake: DetrackFake, client: httpx.Client) -> None:
    for do_number in ("X-1", "X-2", "X-3"):
        create(client, do_number)

    single = client.delete("/dn/jobs/delete", params={"do_number": "X-1", "date": DAY})
    again = client.delete("/dn/jobs/delete", params={"do_number": "X-1", "date": DAY})
    batch = client.request(
        "DELETE",
        "/dn/jobs",
        json={"data": [{"do_number": "X-2", "date": DAY}, {"do_number": "X-3", "date": DAY}]},
    )

    assert single.status_code == 204
    assert again.status_code == 404
    assert batch.status_code == 200
    assert [flag["ok"] for flag in batch.json()["data"]] == [True, True]
    assert fake.jobs() == []
    assert fake.create_count("X-1", DAY) == 1


def test_completed_job_is_undeletable_and_remains(fake: DetrackFake, client: httpx.Client) -> None:
    create(client, "C-1")
    create(client, "C-2")
    fake.set_status("C-1", DAY, "completed")

    batch = client.request(
        "DELETE",
        "/dn/jobs",
        json={
            "data": [
                {"do_number": "C-1", "date": DAY},
                {"do_number": "C-2", "date": DAY},
                {"do_number": "NOPE", "date": DAY},
            ]
        },
    )
    single = client.delete("/dn/jobs/delete", params={"do_number": "C-1", "date": DAY})

    assert batch.status_code == 422
    body = batch.json()
    assert body["code"] == "deletion_failed"
    assert [flag["ok"] for flag in body["data"]] == [False, True, False]
    assert [(e["do_number"], e["codes"]) for e in body["errors"]] == [
        ("C-1", ["undeletable"]),
        ("NOPE", ["not_found"]),
    ]
    assert single.status_code == 403
    assert single.json()["code"] == "forbidden"
    assert fake.job("C-1", DAY)["tracking_status"] == "Completed"  # type: ignore[index]
    assert fake.job("C-2", DAY) is None


# search and list


def test_search_by_do_numbers_and_paginate(client: httpx.Client) -> None:
    for do_number in ("S-1", "S-2", "S-3", "OTHER"):
        create(client, do_number)

    found = client.post("/dn/jobs/search", json={"data": {"do_numbers": ["S-1", "S-3", "NOPE"]}})
    first = client.post(
        "/dn/jobs/search", json={"data": {"do_numbers": ["S-1", "S-2", "S-3"], "limit": 2}}
    )
    second = client.post(
        "/dn/jobs/search",
        json={"data": {"do_numbers": ["S-1", "S-2", "S-3"], "limit": 2, "page": 2}},
    )

    assert found.status_code == 200
    assert [j["do_number"] for j in found.json()["data"]] == ["S-1", "S-3"]
    assert found.json()["links"] == {"next": None, "prev": None}
    assert [j["do_number"] for j in first.json()["data"]] == ["S-1", "S-2"]
    assert first.json()["links"]["next"] is not None
    assert [j["do_number"] for j in second.json()["data"]] == ["S-3"]
    assert second.json()["links"]["next"] is None


def test_list_filters_by_status(fake: DetrackFake, client: httpx.Client) -> None:
    create(client, "L-1")
    create(client, "L-2")
    fake.set_status("L-2", DAY, "failed")

    response = client.get("/dn/jobs", params={"status": "failed,completed", "page": 1})

    assert response.status_code == 200
    assert [j["do_number"] for j in response.json()["data"]] == ["L-2"]
    assert response.json()["links"] == {"next": None, "prev": None}


# rate limit


def test_rate_limit_with_fake_clock(
    fake: DetrackFake, client: httpx.Client, clock: FakeClock
) -> None:
    for _ in range(30):
        assert client.get("/dn/jobs").status_code == 200
    clock.advance(20)
    for _ in range(30):
        assert client.get("/dn/jobs").status_code == 200

    refused = client.get("/dn/jobs")
    refused_again = client.get("/dn/jobs")  # a refusal takes no slot: still 40 s to wait
    clock.advance(40)  # the first 30 leave the window
    admitted = client.get("/dn/jobs")

    assert refused.status_code == 429
    assert refused.json() == {"code": "too_many_requests", "message": "Rate limit exceeded"}
    assert refused.headers["Retry-After"] == "40"
    assert refused_again.headers["Retry-After"] == "40"
    assert admitted.status_code == 200
    assert [r.status for r in fake.requests()][-3:] == [429, 429, 200]


def test_rate_limit_can_omit_retry_after(clock: FakeClock) -> None:
    with (
        DetrackFake(api_key=KEY, rate_limit_per_minute=1, send_retry_after=False, clock=clock) as f,
        httpx.Client(base_url=f.base_url, headers={"X-API-KEY": KEY}) as http,
    ):
        assert http.get("/dn/jobs").status_code == 200
        refused = http.get("/dn/jobs")

    assert refused.status_code == 429
    assert "Retry-After" not in refused.headers


# faults


def test_injected_503_html_is_answered_once(fake: DetrackFake, client: httpx.Client) -> None:
    fake.inject(Fault(status=503, body=HTML_500, content_type="text/html", retry_after="2"))

    faulted = create(client, "F-1")
    retried = create(client, "F-1")

    assert faulted.status_code == 503
    assert faulted.text == HTML_500
    assert faulted.headers["Content-Type"] == "text/html"
    assert faulted.headers["Retry-After"] == "2"
    assert retried.status_code == 201
    assert fake.create_count("F-1", DAY) == 1
    assert [r.status for r in fake.requests()] == [503, 201]


def test_faults_follow_path_prefix_and_fifo_order(fake: DetrackFake, client: httpx.Client) -> None:
    fake.inject(Fault(status=502), path_prefix="/dn/jobs/bulk")
    fake.inject(Fault(status=504), times=2)

    statuses = [
        client.get("/dn/jobs").status_code,
        client.post("/dn/jobs/bulk", json={"data": [job("P-1")]}).status_code,
        client.get("/dn/jobs").status_code,
        client.get("/dn/jobs").status_code,
    ]
    fake.inject(Fault(status=500))
    fake.reset_faults()

    assert statuses == [504, 502, 504, 200]
    assert client.get("/dn/jobs").status_code == 200


def test_handle_first_fault_creates_the_job_but_answers_500(
    fake: DetrackFake, client: httpx.Client
) -> None:
    fake.inject(Fault(status=500, handle_first=True), path_prefix="/dn/jobs")

    response = create(client, "H-1")
    retry = create(client, "H-1")

    assert response.status_code == 500
    assert fake.job("H-1", DAY) is not None
    assert codes(retry) == [("do_number", ["is already taken"])]
    assert fake.create_count("H-1", DAY) == 1


def test_dropped_connection_changes_nothing(fake: DetrackFake, client: httpx.Client) -> None:
    fake.inject(Fault(drop_connection=True))

    with pytest.raises(httpx.RemoteProtocolError):
        create(client, "DROP-1")

    assert fake.jobs() == []
    assert fake.requests()[-1].status == 0
    assert create(client, "DROP-1").status_code == 201


def test_dropped_connection_after_handling_keeps_the_job(
    fake: DetrackFake, client: httpx.Client
) -> None:
    fake.inject(Fault(drop_connection=True, handle_first=True))

    with pytest.raises(httpx.RemoteProtocolError):
        create(client, "DROP-2")

    assert fake.job("DROP-2", DAY) is not None


def test_delay_times_the_client_out_and_stop_stays_prompt(
    fake: DetrackFake, client: httpx.Client
) -> None:
    fake.inject(Fault(status=504, delay=1.0))

    with pytest.raises(httpx.ReadTimeout):
        client.post("/dn/jobs", json={"data": job("SLOW-1")}, timeout=0.2)
    started = time.monotonic()
    fake.stop()

    assert time.monotonic() - started < 0.5
    assert fake.jobs() == []
    assert fake.requests()[-1].status == 0


def test_slow_success_sends_the_real_answer_late(fake: DetrackFake, client: httpx.Client) -> None:
    fake.inject(Fault(status=200, handle_first=True, delay=0.1))

    response = create(client, "SLOW-3")

    assert response.status_code == 201
    assert response.json()["data"]["do_number"] == "SLOW-3"
    assert fake.requests()[-1].status == 201


def test_slow_success_processes_before_the_client_gives_up(
    fake: DetrackFake, client: httpx.Client
) -> None:
    fake.inject(Fault(status=200, handle_first=True, delay=1.0))

    with pytest.raises(httpx.ReadTimeout):
        client.post("/dn/jobs", json={"data": job("SLOW-2")}, timeout=0.2)

    assert fake.job("SLOW-2", DAY) is not None


def test_a_held_request_is_applied_after_the_client_gave_up_and_after_later_requests(
    fake: DetrackFake, client: httpx.Client
) -> None:
    create(client, "HELD-1")
    fake.inject(Fault(status=200, handle_first=True, hold=0.5), path_prefix="/dn/jobs")

    with pytest.raises(httpx.ReadTimeout):
        client.request("DELETE", "/dn/jobs/HELD-1", timeout=0.2)
    assert fake.job("HELD-1", DAY) is not None  # not applied yet
    assert create(client, "HELD-2").status_code == 201  # a later request goes first

    deadline = time.monotonic() + 5
    while fake.requests()[1].status is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert fake.job("HELD-1", DAY) is None  # the delete landed after all
    assert fake.job("HELD-2", DAY) is not None
