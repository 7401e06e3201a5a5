"""What a `harness run` tells its scheduler: one exit code, and the lines that explain it.

| code | meaning |
| ---- | ------- |
| 0 | everything due was handled |
| 1 | dead letters or refused jobs exist, whichever run made them (listed); wins over 2 and 3 |
| 2 | configuration or usage error (also a file source's URL or target found wrong) |
| 3 | a destination (S3, DeTrack, a file source) or the database unreachable; work waits |

Dead letters need a person whatever else happened, so 1 wins over the others; so does a
configuration to fix over 3, which says only that a rerun later is likely to succeed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg

from harness.config import first_line, scrub

EXIT_OK, EXIT_PROBLEM, EXIT_CONFIG, EXIT_UNREACHABLE = 0, 1, 2, 3
SEVERITY = {EXIT_OK: 0, EXIT_UNREACHABLE: 1, EXIT_CONFIG: 2, EXIT_PROBLEM: 3}

# work put off to a later try (a failed attempt, a call given back, a wait for another copy)
PERMITS_WAITING_SQL = """
SELECT count(*), min(next_attempt_at)
  FROM tps.staged_permit WHERE state = 'pending' AND next_attempt_at > now()
"""
FILES_WAITING_SQL = """
SELECT count(*), min(next_attempt_at)
  FROM files.file WHERE state = 'pending' AND next_attempt_at > now()
"""
DEAD_FILES_SQL = """
SELECT file_id, source, path, step, error_class, error
  FROM files.file WHERE state = 'dead' ORDER BY file_id LIMIT 20
"""
JOBS_WAITING_SQL = """
SELECT count(*), min(next_attempt_at)
  FROM delivery.job WHERE sync_state = 'pending' AND next_attempt_at > now()
"""


@dataclass
class Outcome:
    code: int = EXIT_OK
    lines: list[str] = field(default_factory=list)

    def add(self, code: int, *lines: str) -> None:
        """Record a finding; the exit code is the most serious one (1, then 2, then 3, then 0)."""
        self.lines += lines
        if SEVERITY[code] > SEVERITY[self.code]:
            self.code = code

    def merge(self, other: Outcome) -> Outcome:
        self.add(other.code, *other.lines)
        return self


def database_unreachable(error: psycopg.OperationalError) -> Outcome:
    """The line that says so; libpq's words with any secret in them masked."""
    outcome = Outcome()
    outcome.add(
        EXIT_UNREACHABLE,
        f"database unreachable ({scrub(first_line(error))}); the work waits in the database:"
        " run again later",
    )
    return outcome


def permit_outcome(connection: psycopg.Connection, upload_failures: int) -> Outcome:
    """Dead letters (all of them), and permits that wait for a retry after failed uploads."""
    from harness.permits.store import PermitStore

    dead = PermitStore(connection).dead_letters()
    return _outcome(
        connection,
        [f"permits: {len(dead)} dead letter(s); requeue with `harness retry`:"]
        + [
            f"  staged row {d.staged_permit_id} permit {d.permit_number}"
            f" generation {d.permit_generation}: {d.last_error}"
            for d in dead[:20]
        ]
        if dead
        else [],
        PERMITS_WAITING_SQL,
        upload_failures,
        "permits: uploads failed or were refused; {waiting} permit(s) wait for a retry",
    )


def shipment_outcome(connection: psycopg.Connection, put_off: int) -> Outcome:
    """Refused or dead jobs (all of them), and jobs that wait for a later try after this run
    met DeTrack failing (``put_off``: jobs retrying or given back in this run)."""
    from harness.shipments.store import ShipmentStore

    failed = ShipmentStore(connection).failed_jobs()
    return _outcome(
        connection,
        ["shipments: jobs DeTrack refused or that ran out of attempts:"]
        + [
            f"  job {job.job_id} (shipment {job.shipment_number}): {job.sync_state},"
            f" HTTP {job.last_status}: {job.last_error}"
            for job in failed[:20]
        ]
        if failed
        else [],
        JOBS_WAITING_SQL,
        put_off,
        "shipments: DeTrack calls failed; {waiting} job(s) wait for a retry",
    )


def files_outcome(
    connection: psycopg.Connection,
    retried: int,
    misconfigured: int,
    unlisted: dict[str, str],
    unconfigured: dict[str, str],
) -> Outcome:
    """Dead files (the first 20); files that wait for a retry after this run met a source, the
    store, the database or the scratch folder failing (``retried``), or for a configuration to
    be fixed (``misconfigured``: a target table or a source URL); sources this run could not
    list (``unlisted``) or that lack their configuration (``unconfigured``), with why."""
    dead = connection.execute(DEAD_FILES_SQL).fetchall()
    outcome = _outcome(
        connection,
        ["files: dead letters; see `harness files dead`, requeue with `harness files requeue`:"]
        + [
            f"  file {file_id} ({source}: {path}) after {step or 'nothing'}: {kind}: {error}"
            for file_id, source, path, step, kind, error in dead
        ]
        if dead
        else [],
        FILES_WAITING_SQL,
        retried,
        "files: a source, the store, the database or the scratch folder failed;"
        " {waiting} file(s) wait for a retry",
    )
    for source, why in sorted(unlisted.items()):
        outcome.add(
            EXIT_UNREACHABLE,
            f"files: source {source} was not listed ({why}); its new files wait for the next run",
        )
    for source, why in sorted(unconfigured.items()):
        outcome.add(EXIT_CONFIG, f"files: source {source} was not listed: {why}")
    if misconfigured:
        outcome.add(
            EXIT_CONFIG,
            f"files: {misconfigured} file(s) wait for their configuration to be fixed"
            " (`harness files status`; the error is on each file)",
        )
    return outcome


def _outcome(
    connection: psycopg.Connection,
    problem_lines: list[str],
    waiting_sql: str,
    put_off: int,
    waiting_line: str,
) -> Outcome:
    """1 with the listed problems; 3 when this run put work off and it waits for later."""
    outcome = Outcome()
    if problem_lines:
        outcome.add(EXIT_PROBLEM, *problem_lines)
    waiting, next_try = connection.execute(waiting_sql).fetchone()
    if put_off and waiting:
        outcome.add(
            EXIT_UNREACHABLE,
            waiting_line.format(waiting=waiting) + f" (next at {next_try:%Y-%m-%d %H:%M:%S %Z})",
        )
    return outcome
