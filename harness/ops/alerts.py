"""Alert delivery: the etl.alert outbox, mailed over SMTP.

Each alert is leased in a short transaction of its own (claimed_until, taken with FOR UPDATE
SKIP LOCKED), mailed with no transaction open, and stamped sent_at in a second short
transaction. Why not one transaction holding the row lock: a slow or hanging mail server would
keep that transaction open ("idle in transaction") for as long as the SMTP exchange lasts,
holding back vacuum and every session waiting on the row.

Concurrent senders never send the same alert (a leased alert is skipped); a mail server outage
gives the lease back and leaves the alert queued (attempts and last_error recorded) for the next
cycle; a sender that crashes mid-exchange leaves its lease to expire, and the alert is sent by
the next sender after it. A crash between the server's acceptance and the stamp, or a lease that
expires while a sender is still talking to a very slow server, can send it once more; the
Message-ID is derived from the alert id so that the receiving side can recognise the repeat.
"""

from __future__ import annotations

import logging
import smtplib
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import formatdate

import psycopg

from harness.config import AlertSettings

log = logging.getLogger(__name__)

# SMTP steps of one exchange besides one RCPT per recipient (connect, EHLO, STARTTLS, EHLO,
# AUTH, MAIL, DATA, the message, QUIT, and a spare); each may take up to the timeout.
SMTP_STEPS = 10

CLAIM_SQL = """
UPDATE etl.alert AS a
   SET claimed_until = clock_timestamp() + %(lease)s, attempts = a.attempts + 1
 WHERE a.alert_id = (SELECT u.alert_id FROM etl.alert AS u
                      WHERE u.sent_at IS NULL
                        AND (u.claimed_until IS NULL OR u.claimed_until <= clock_timestamp())
                      ORDER BY u.alert_id LIMIT 1 FOR UPDATE SKIP LOCKED)
RETURNING a.alert_id, a.kind, a.subject, a.body, a.pipeline, a.claimed_until
"""
# the mail went out: stamp it even if the lease expired meanwhile (a second sender's stamp,
# if any, keeps the first time)
STAMP_SQL = """
UPDATE etl.alert SET sent_at = clock_timestamp(), claimed_until = NULL, last_error = NULL
 WHERE alert_id = %s AND sent_at IS NULL
"""
# only our own lease is given back: after it expired, another sender may hold the alert
RELEASE_SQL = """
UPDATE etl.alert SET claimed_until = NULL, last_error = %s
 WHERE alert_id = %s AND claimed_until = %s
"""


@dataclass(frozen=True)
class SendResult:
    sent: int
    failed: int


@dataclass(frozen=True)
class ClaimedAlert:
    alert_id: int
    kind: str
    subject: str
    body: str
    pipeline: str | None
    claimed_until: datetime


def alert_lease(settings: AlertSettings) -> timedelta:
    """Longer than the slowest SMTP exchange the timeout allows, so that a live sender's lease
    does not expire mid-exchange."""
    steps = SMTP_STEPS + len(settings.recipients)
    return timedelta(seconds=settings.smtp_timeout_seconds * steps)


def send_pending_alerts(connection: psycopg.Connection, settings: AlertSettings) -> SendResult:
    """Mail every unsent alert; stop at the first failure (the server is likely down).
    ``connection`` must be in autocommit mode: each step is then its own short transaction."""
    if not settings.smtp_host or not settings.recipients:
        return SendResult(0, 0)
    if not connection.autocommit:
        raise ValueError("send_pending_alerts needs an autocommit connection")
    lease, sent = alert_lease(settings), 0
    while (alert := claim_alert(connection, lease)) is not None:
        try:
            send_mail(settings, alert.subject, alert.body, message_id=message_id(alert.alert_id))
        except (OSError, smtplib.SMTPException) as error:
            release_alert(connection, alert, f"{type(error).__name__}: {error}")
            log.warning("alert not sent", extra={"alert_id": alert.alert_id, "error": str(error)})
            return SendResult(sent, 1)
        connection.execute(STAMP_SQL, [alert.alert_id])
        sent += 1
        log.info(
            "alert sent",
            extra={"alert_id": alert.alert_id, "kind": alert.kind, "pipeline": alert.pipeline},
        )
    return SendResult(sent, 0)


def claim_alert(connection: psycopg.Connection, lease: timedelta) -> ClaimedAlert | None:
    """Lease the oldest unsent alert that nobody holds (one statement: autocommit makes it a
    transaction of its own, committed before any mail is sent)."""
    row = connection.execute(CLAIM_SQL, {"lease": lease}).fetchone()
    return ClaimedAlert(*row) if row else None


def release_alert(connection: psycopg.Connection, alert: ClaimedAlert, error: str) -> None:
    """Give the lease back with the error: the next cycle (of any worker) retries at once."""
    connection.execute(RELEASE_SQL, [error, alert.alert_id, alert.claimed_until])


def message_id(alert_id: int) -> str:
    """The same for every send of one alert, so a repeat can be recognised."""
    return f"<pgferry-alert-{alert_id}@{socket.getfqdn()}>"


def send_mail(settings: AlertSettings, subject: str, body: str, message_id: str) -> None:
    """Mail ``body`` to ALERT_TO with the given Message-ID (``<...@...>``) and a Date."""
    message = EmailMessage()
    message["From"] = settings.alert_from
    message["To"] = ", ".join(settings.recipients)
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=True)
    message["Message-ID"] = message_id
    message.set_content(body)
    with smtplib.SMTP(
        settings.smtp_host, settings.smtp_port, timeout=settings.smtp_timeout_seconds
    ) as smtp:
        if settings.smtp_starttls:
            smtp.starttls()
        if settings.smtp_user and settings.smtp_password:
            smtp.login(settings.smtp_user, settings.smtp_password.get_secret_value())
        smtp.send_message(message)
