"""Alert delivery: the etl.alert outbox, mailed over SMTP.

Each alert is claimed with FOR UPDATE SKIP LOCKED in its own short transaction, sent, and
stamped sent_at in that same transaction: concurrent senders never send the same alert, and a
mail server outage leaves it queued (attempts and last_error recorded) for the next cycle. A crash
between the server's acceptance and the commit can send it once more; the Message-ID is derived
from the alert id so that the receiving side can recognise the repeat.
"""

from __future__ import annotations

import logging
import smtplib
import socket
from dataclasses import dataclass
from email.message import EmailMessage

import psycopg

from harness.config import AlertSettings

log = logging.getLogger(__name__)

CLAIM_SQL = """
SELECT alert_id, kind, subject, body, pipeline FROM etl.alert
 WHERE sent_at IS NULL ORDER BY alert_id LIMIT 1 FOR UPDATE SKIP LOCKED
"""


@dataclass(frozen=True)
class SendResult:
    sent: int
    failed: int


def send_pending_alerts(connection: psycopg.Connection, settings: AlertSettings) -> SendResult:
    """Mail every unsent alert; stop at the first failure (the server is likely down)."""
    if not settings.smtp_host or not settings.recipients:
        return SendResult(0, 0)
    sent = 0
    while True:
        with connection.transaction():
            row = connection.execute(CLAIM_SQL).fetchone()
            if row is None:
                return SendResult(sent, 0)
            alert_id, kind, subject, body, pipeline = row
            try:
                send_mail(settings, subject, body, message_id=f"pgferry-alert-{alert_id}")
            except (OSError, smtplib.SMTPException) as error:
                connection.execute(
                    "UPDATE etl.alert SET attempts = attempts + 1, last_error = %s"
                    " WHERE alert_id = %s",
                    [f"{type(error).__name__}: {error}", alert_id],
                )
                log.warning("alert not sent", extra={"alert_id": alert_id, "error": str(error)})
                return SendResult(sent, 1)
            connection.execute(
                "UPDATE etl.alert SET sent_at = clock_timestamp(), attempts = attempts + 1,"
                " last_error = NULL WHERE alert_id = %s",
                [alert_id],
            )
            sent += 1
            log.info("alert sent", extra={"alert_id": alert_id, "kind": kind, "pipeline": pipeline})


def send_mail(settings: AlertSettings, subject: str, body: str, message_id: str) -> None:
    message = EmailMessage()
    message["From"] = settings.alert_from
    message["To"] = ", ".join(settings.recipients)
    message["Subject"] = subject
    message["Message-ID"] = f"<{message_id}@{socket.getfqdn()}>"
    message.set_content(body)
    with smtplib.SMTP(
        settings.smtp_host, settings.smtp_port, timeout=settings.smtp_timeout_seconds
    ) as smtp:
        if settings.smtp_starttls:
            smtp.starttls()
        if settings.smtp_user and settings.smtp_password:
            smtp.login(settings.smtp_user, settings.smtp_password.get_secret_value())
        smtp.send_message(message)
