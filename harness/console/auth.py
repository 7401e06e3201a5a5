"""Logging in with PostgreSQL credentials, and the sessions that follow.

A login is a connection: the server connects to DATABASE_URL's host, port and database as the
role typed, with the password typed; success means logged in. The role must be a member
(with the privileges inherited: pg_has_role USAGE) of pgferry_operator (may act) or
pgferry_viewer (may read); anyone else is refused. A missing role counts as no membership.

Sessions live in this process's memory only: the cookie carries a random session id, the
password stays in the Session object (never logged, never in a cookie) until the session ends:
logout, idle timeout, absolute timeout, or a membership that no longer holds.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import threading
import time
from dataclasses import dataclass, field

import psycopg

from harness.console.db import UserConnections, open_connection, user_conninfo
from harness.console.settings import ConsoleSettings

log = logging.getLogger("harness.console")

OPERATOR_ROLE = "pgferry_operator"
VIEWER_ROLE = "pgferry_viewer"
LEVELS = {"read": 1, "act": 2}  # what a route requires
ROLE_LEVEL = {VIEWER_ROLE: LEVELS["read"], OPERATOR_ROLE: LEVELS["act"]}

# CASE keeps pg_has_role from being called on a role that does not exist (it would raise)
MEMBERSHIP_SQL = """
SELECT r.name FROM unnest(%s::text[]) AS r(name)
 WHERE CASE WHEN to_regrole(r.name) IS NULL THEN false ELSE pg_has_role(r.name, 'USAGE') END
"""


class LoginRefused(Exception):
    """What the login page says (never which of role name or password was wrong). ``guess``:
    a wrong role name or password, what the login throttle counts (an outage is not)."""

    def __init__(self, message: str, *, guess: bool = False) -> None:
        super().__init__(message)
        self.guess = guess


def membership(connection: psycopg.Connection) -> str | None:
    """The strongest console role the connected user holds, or None."""
    held = {row[0] for row in connection.execute(MEMBERSHIP_SQL, [[OPERATOR_ROLE, VIEWER_ROLE]])}
    for role in (OPERATOR_ROLE, VIEWER_ROLE):
        if role in held:
            return role
    return None


def authenticate(
    settings: ConsoleSettings, role: str, password: str
) -> tuple[str, psycopg.Connection]:
    """(console role, the open connection) for a valid login; LoginRefused otherwise."""
    if not role or not password:
        raise LoginRefused("enter a role name and its password")
    conninfo = user_conninfo(settings, role, password)
    try:
        connection = open_connection(conninfo, settings)
    except psycopg.OperationalError as error:
        reason = str(error).lower()
        if "authentication failed" in reason or "does not exist" in reason:
            log.info("console login refused for a role: wrong role name or password")
            raise LoginRefused("login failed: wrong role name or password", guess=True) from None
        if "pg_hba.conf" in reason:
            raise LoginRefused(
                "login failed: the database does not accept this role from the console's host"
            ) from None
        log.warning("console login: the database cannot be reached")
        raise LoginRefused("the database cannot be reached now; try again later") from None
    try:
        if not connection.pgconn.used_password and not settings.trust_server_auth:
            raise LoginRefused(
                "login refused: the database let this role in without checking its password"
                " (trust or peer authentication); the console accepts password logins only"
            )
        console_role = membership(connection)
        if console_role is None:
            raise LoginRefused(
                f"login refused: {role} is not a member of {VIEWER_ROLE} or {OPERATOR_ROLE};"
                f" ask the DBA to GRANT {VIEWER_ROLE} TO {role}"
            )
    except BaseException:
        connection.close()
        raise
    return console_role, connection


def same_token(given: str | None, expected: str) -> bool:
    return bool(given) and hmac.compare_digest(given.encode(), expected.encode())


@dataclass(eq=False)
class Session:
    id: str
    login: str
    console_role: str
    connections: UserConnections = field(repr=False)
    csrf_token: str = field(default_factory=lambda: secrets.token_urlsafe(32), repr=False)
    created: float = field(default_factory=time.monotonic)
    last_active: float = field(default_factory=time.monotonic)
    role_checked: float = field(default_factory=time.monotonic)

    @property
    def may_act(self) -> bool:
        return ROLE_LEVEL[self.console_role] >= LEVELS["act"]

    def allows(self, level: str) -> bool:
        return ROLE_LEVEL[self.console_role] >= LEVELS[level]


class SessionStore:
    """Sessions by id, in memory. Expired sessions are dropped (and their connections closed)
    when met and by sweep()."""

    def __init__(self, settings: ConsoleSettings) -> None:
        self._settings = settings
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def create(
        self, login: str, console_role: str, password: str, first: psycopg.Connection
    ) -> Session:
        connections = UserConnections(
            user_conninfo(self._settings, login, password), self._settings
        )
        connections.adopt(first)
        session = Session(secrets.token_urlsafe(32), login, console_role, connections)
        with self._lock:
            self._sessions[session.id] = session
        return session

    def get(self, session_id: str | None, *, activity: bool = True) -> Session | None:
        """The live session with this id; ``activity`` counts the request as the user's (a
        background poll does not keep a session from idling out)."""
        if not session_id:
            return None
        now = time.monotonic()
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                return None
            if self._expired(session, now):
                del self._sessions[session_id]
                expired = session
                session = None
            elif activity:
                session.last_active = now
        if session is None:
            expired.connections.close()
        return session

    def end(self, session: Session) -> None:
        with self._lock:
            self._sessions.pop(session.id, None)
        session.connections.close()

    def sweep(self) -> None:
        now = time.monotonic()
        with self._lock:
            expired = [s for s in self._sessions.values() if self._expired(s, now)]
            for session in expired:
                del self._sessions[session.id]
            live = list(self._sessions.values())
        for session in expired:
            session.connections.close()
        for session in live:
            session.connections.close_idle()

    def close_all(self) -> None:
        with self._lock:
            sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            session.connections.close()

    def __len__(self) -> int:
        return len(self._sessions)

    def _expired(self, session: Session, now: float) -> bool:
        return (
            now - session.last_active > self._settings.idle_seconds
            or now - session.created > self._settings.absolute_seconds
        )


def recheck_membership(store: SessionStore, session: Session, settings: ConsoleSettings) -> bool:
    """Read the session's membership again when it was last read more than
    role_recheck_seconds ago. False (and the session ended) when it no longer holds or the
    login no longer works; a database that cannot be reached keeps the session."""
    if time.monotonic() - session.role_checked < settings.role_recheck_seconds:
        return True
    try:
        with session.connections.connection() as connection:
            role = membership(connection)
    except psycopg.Error as error:
        refused = isinstance(error, psycopg.OperationalError) and (
            "authentication failed" in str(error).lower() or "does not exist" in str(error)
        )
        if refused:  # the password changed or the role is gone: the login no longer holds
            store.end(session)
            return False
        return True  # unreachable or slow: the page says so; the session stays
    session.role_checked = time.monotonic()
    if role is None:
        store.end(session)
        return False
    session.console_role = role
    return True
