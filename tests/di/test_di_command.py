"""`harness di list | run | status` as a scheduler runs them: two source databases, a process
per source run side by side, one failing while the other lands, exit codes and the results."""

from __future__ import annotations

import json
import os
from datetime import timedelta

from tests.cli.support import run
from tests.di.conftest import Hub, add_users


def environment(hub: Hub, endpoint: str) -> dict[str, str]:
    return {
        "DATABASE_URL": hub.target_url,
        "PGFERRY_SOURCE_QVP_URL": hub.sources["qvp"],
        "PGFERRY_SOURCE_SVP_URL": hub.sources["svp"],
        "DI_BUCKET": hub.layer.bucket,
        "DI_ENDPOINT_URL": endpoint,
        "DI_PARALLEL": "2",
        "AWS_ACCESS_KEY_ID": os.environ["AWS_ACCESS_KEY_ID"],
        "AWS_SECRET_ACCESS_KEY": os.environ["AWS_SECRET_ACCESS_KEY"],
        "AWS_DEFAULT_REGION": "us-east-1",
    }


def test_two_sources_run_side_by_side_and_a_failure_stops_no_other(
    hub: Hub, s3_endpoint: str
) -> None:
    for name in ("qvp", "svp"):
        with hub.source(name) as source:
            add_users(source, 1, 100 if name == "qvp" else 60)
    hub.define("qvp_users", source="qvp", cdc_column="updated_at", window_overlap=timedelta(days=7))
    hub.define("svp_users", source="svp", group="svp")
    hub.define("svp_missing", source="svp", source_table="app.no_such_table", group="svp")
    env = environment(hub, s3_endpoint)

    listed = run(env, "di", "list")
    assert listed.returncode == 0, listed.stderr
    assert "qvp_users" in listed.stdout and "full reload" in listed.stdout

    ran = run(env, "di", "run", "--json")
    assert ran.returncode == 1, ran.stderr  # one process failed
    results = {r["name"]: r for r in json.loads(ran.stdout)}
    assert results["qvp_users"]["status"] == "succeeded"
    assert results["svp_users"]["status"] == "succeeded"
    assert results["svp_missing"]["status"] == "failed"
    assert "no_such_table" in results["svp_missing"]["message"]
    assert results["qvp_users"]["merged"]["inserted"] == 100
    assert hub.stg_rows("qvp_users") == hub.source_rows("qvp")
    assert hub.stg_rows("svp_users") == hub.source_rows("svp")
    assert "svp_users: merged: 60 inserted" in ran.stderr  # progress per step, on stderr

    group = run(env, "di", "run", "--group", "svp")
    assert group.returncode == 1
    assert "qvp_users" not in group.stdout and "svp_users" in group.stdout

    only = run(env, "di", "run", "qvp_users")
    assert only.returncode == 0, only.stderr
    status = run(env, "di", "status")
    assert status.returncode == 1  # svp_missing's last run failed
    assert "svp_missing" in status.stdout and "failed" in status.stdout


def test_usage_faults_answer_in_a_line(hub: Hub, s3_endpoint: str) -> None:
    env = environment(hub, s3_endpoint)
    unknown = run(env, "di", "run", "nope")
    assert unknown.returncode == 2
    assert "no DI process 'nope'" in unknown.stderr and "Traceback" not in unknown.stderr
    no_bucket = run({k: v for k, v in env.items() if k != "DI_BUCKET"}, "di", "run")
    assert no_bucket.returncode == 2
    assert "DI_BUCKET is not set" in no_bucket.stderr
