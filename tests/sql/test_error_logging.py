"""The shared TRY/CATCH routine etl.log_error, in both patterns the package uses.

The trigger and procedure below are written here, against the shared routine, exactly as the
package's own objects use it: the routine is what is under test.
"""

from __future__ import annotations

import re

import psycopg
import pytest

from tests.support.pg import connect

LOG_AND_CONTINUE_TRIGGER = """
CREATE TABLE inbox (id int PRIMARY KEY, amount text, accepted boolean);
CREATE TABLE ledger (id int PRIMARY KEY, amount numeric NOT NULL);

-- Another system writes inbox: its insert must never fail because of us.
CREATE FUNCTION inbox_to_ledger() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_state text; v_message text; v_detail text; v_hint text; v_context text;
BEGIN
    BEGIN
        INSERT INTO ledger (id, amount) VALUES (NEW.id, NEW.amount::numeric);
        NEW.accepted := true;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT,
            v_detail = PG_EXCEPTION_DETAIL, v_hint = PG_EXCEPTION_HINT,
            v_context = PG_EXCEPTION_CONTEXT;
        PERFORM etl.log_error(
            p_object_name => 'inbox_to_ledger', p_sqlstate => v_state, p_message => v_message,
            p_detail => v_detail, p_hint => v_hint, p_context => v_context,
            p_table_name => 'inbox', p_row_key => jsonb_build_object('id', NEW.id),
            p_row_payload => to_jsonb(NEW),
            p_process_id => NULLIF(current_setting('test.process', true), '')::bigint);
        NEW.accepted := false;
    END;
    RETURN NEW;
END $$;
CREATE TRIGGER inbox_to_ledger BEFORE INSERT ON inbox
    FOR EACH ROW EXECUTE FUNCTION inbox_to_ledger();
"""

LOG_AND_RAISE_PROCEDURE = """
CREATE TABLE totals (name text PRIMARY KEY, total numeric NOT NULL);

CREATE PROCEDURE add_total(p_name text, p_amount text) LANGUAGE plpgsql AS $$
DECLARE
    v_state text; v_message text; v_detail text; v_hint text; v_context text;
    v_error_id bigint;
BEGIN
    BEGIN
        INSERT INTO totals VALUES (p_name, 0);
        UPDATE totals SET total = total + p_amount::numeric WHERE name = p_name;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT,
            v_detail = PG_EXCEPTION_DETAIL, v_hint = PG_EXCEPTION_HINT,
            v_context = PG_EXCEPTION_CONTEXT;
        v_error_id := etl.log_error(
            p_object_name => 'add_total', p_sqlstate => v_state, p_message => v_message,
            p_detail => v_detail, p_hint => v_hint, p_context => v_context,
            p_table_name => 'totals', p_row_key => jsonb_build_object('name', p_name));
    END;
    IF v_error_id IS NOT NULL THEN
        COMMIT;
        CALL etl.raise_logged_error(v_error_id);
    END IF;
END $$;
"""


def test_log_and_continue_keeps_the_log_row_and_the_good_rows(db_url: str) -> None:
    with connect(db_url) as conn:
        conn.execute(LOG_AND_CONTINUE_TRIGGER)
        process_id = conn.execute("SELECT etl.start_process('permits')").fetchone()[0]
        conn.execute(f"SET test.process = '{process_id}'")

        conn.execute("INSERT INTO inbox (id, amount) VALUES (1, '10.5'), (2, 'ten'), (3, '7')")

        assert conn.execute("SELECT id, accepted FROM inbox ORDER BY id").fetchall() == [
            (1, True),
            (2, False),
            (3, True),
        ]
        assert conn.execute("SELECT id FROM ledger ORDER BY id").fetchall() == [(1,), (3,)]
        log = conn.execute(
            "SELECT object_name, table_name, row_key, row_payload->>'amount', sqlstate, message,"
            " context, process_id FROM etl.error_log"
        ).fetchall()
    assert len(log) == 1
    obj, table, key, amount, sqlstate, message, context, logged_process = log[0]
    assert (obj, table, key, amount, sqlstate) == (
        "inbox_to_ledger",
        "inbox",
        {"id": 2},
        "ten",
        "22P02",
    )
    assert message == 'invalid input syntax for type numeric: "ten"'
    assert "inbox_to_ledger" in context
    assert logged_process == process_id


def test_log_and_raise_fails_the_caller_and_keeps_the_log_row(db_url: str) -> None:
    with connect(db_url) as conn:
        conn.execute(LOG_AND_RAISE_PROCEDURE)
        conn.execute("CALL add_total('a', '1')")

        with pytest.raises(psycopg.Error) as raised:
            conn.execute("CALL add_total('b', 'lots')")

        assert raised.value.sqlstate == "22P02"
        assert raised.value.diag.message_primary == 'invalid input syntax for type numeric: "lots"'
        assert "Logged as etl.error_log error_id" in raised.value.diag.message_hint

    with connect(db_url) as other:  # a separate session sees only committed rows
        assert other.execute("SELECT name, total FROM totals").fetchall() == [("a", 1)]
        assert other.execute(
            "SELECT object_name, row_key, sqlstate FROM etl.error_log"
        ).fetchall() == [("add_total", {"name": "b"}, "22P02")]


def test_log_and_raise_keeps_the_original_detail_and_sqlstate(db_url: str) -> None:
    with connect(db_url) as conn:
        conn.execute(LOG_AND_RAISE_PROCEDURE)
        conn.execute("CALL add_total('a', '1')")
        with pytest.raises(psycopg.errors.UniqueViolation) as raised:
            conn.execute("CALL add_total('a', '2')")
        assert raised.value.diag.message_detail == "Key (name)=(a) already exists."
        assert conn.execute("SELECT detail FROM etl.error_log").fetchone() == (
            "Key (name)=(a) already exists.",
        )


def test_log_and_raise_inside_a_transaction_block_is_refused_loudly(db_url: str) -> None:
    """The documented limit: COMMIT needs a non-atomic CALL. Nothing is half-written."""
    with connect(db_url) as conn:
        conn.execute(LOG_AND_RAISE_PROCEDURE)
        with pytest.raises(psycopg.Error) as raised, conn.transaction():
            conn.execute("CALL add_total('b', 'lots')")
        assert raised.value.sqlstate == "2D000"
        assert conn.execute("SELECT count(*) FROM etl.error_log").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM totals").fetchone() == (0,)


def test_secrets_in_a_payload_are_redacted_at_any_depth(db_url: str) -> None:
    payload = {
        "user": "ann",
        "password": "hunter2",
        "config": {"api_key": "k-123", "endpoint": "x", "nested": [{"Secret": "s"}]},
        "X-API-KEY": "abc",
    }
    with connect(db_url) as conn:
        conn.execute(
            "SELECT etl.log_error('t', '22000', 'm', p_row_payload => %s::jsonb)",
            [psycopg.types.json.Jsonb(payload)],
        )
        stored = conn.execute("SELECT row_payload FROM etl.error_log").fetchone()[0]
    assert stored == {
        "user": "ann",
        "password": "[redacted]",
        "config": {"api_key": "[redacted]", "endpoint": "x", "nested": [{"Secret": "[redacted]"}]},
        "X-API-KEY": "[redacted]",
    }
    assert "hunter2" not in str(stored) and "k-123" not in str(stored)


def test_the_logger_never_raises_on_bad_input(db_url: str) -> None:
    with connect(db_url) as conn:
        error_id = conn.execute(
            "SELECT etl.log_error(NULL, NULL, NULL, p_process_id => 987654)"
        ).fetchone()[0]
        row = conn.execute(
            "SELECT object_name, sqlstate, message, process_id, context FROM etl.error_log"
            " WHERE error_id = %s",
            [error_id],
        ).fetchone()
    assert row[:4] == ("(unknown object)", "XX000", "(no message)", None)
    assert "unknown process id 987654" in row[4]


SECRET_KEYS = [
    "pwd", "PWD", "passwd", "password", "db_password", "Passphrase", "private_key",
    "privateKey", "ssh-private-key", "cookie", "Set-Cookie", "session_id", "sessionId",
    "SESSIONID", "auth", "Auth", "x-auth", "basic_auth", "oauth", "bearer", "bearer_token",
    "authorization", "Authorization", "Proxy-Authorisation", "api_key", "apiKey", "x-api-key",
    "X-API-KEY", "token", "accessToken", "refresh_token", "secret", "client_secret",
    "credentials", "aws_credential",
]  # fmt: skip


def logged_payload(conn: psycopg.Connection, payload: object) -> object:
    error_id = conn.execute(
        "SELECT etl.log_error('t', '22000', 'm', p_row_key => %s, p_row_payload => %s)",
        [psycopg.types.json.Jsonb(payload), psycopg.types.json.Jsonb(payload)],
    ).fetchone()[0]
    key, stored = conn.execute(
        "SELECT row_key, row_payload FROM etl.error_log WHERE error_id = %s", [error_id]
    ).fetchone()
    assert key == stored
    return stored


@pytest.mark.parametrize("key", SECRET_KEYS)
def test_each_kind_of_secret_key_is_redacted(conn: psycopg.Connection, key: str) -> None:
    payload = {key: "s3cr3t", "id": 7, "nested": [{key: {"value": "s3cr3t"}}]}
    stored = logged_payload(conn, payload)
    assert stored == {key: "[redacted]", "id": 7, "nested": [{key: "[redacted]"}]}


def test_a_secret_looking_value_under_a_harmless_key_is_kept(conn: psycopg.Connection) -> None:
    """Keys decide, not values; and a key that merely contains 'auth' or 'pass' is no secret."""
    payload = {
        "author": "Bearer eyJhbGciOiJIUzI1NiJ9.e30.abc",
        "authored_by": "password=hunter2",
        "note": "Authorization: Basic dXNlcjpwYXNz",
        "passenger": "token 123",
        "session": "morning",
        "key": "primary",
        "api": "v2",
        "keyboard": "qwerty",
        "nested": [{"author": "secret agent"}],
    }
    assert logged_payload(conn, payload) == payload


def deep_payload(depth: int) -> str:
    """An object whose 'data' nests ``depth`` arrays around a secret (json.dumps would recurse)."""
    inner = '{"token": "deep-s3cr3t", "note": "kept"}'
    return '{"password": "hunter2", "data": ' + "[" * depth + inner + "]" * depth + "}"


@pytest.mark.parametrize("role", ["postgres", "pgferry_loader"])
def test_a_deeply_nested_payload_is_logged_without_raising(
    conn: psycopg.Connection, role: str
) -> None:
    """Unbounded recursion over 10,000 levels exhausted the stack (54001) and the logger raised;
    the redaction stops at 100 levels and replaces what is deeper, secrets included."""
    if role != "postgres":
        conn.execute(f"SET ROLE {role}")
    error_id = conn.execute(
        "SELECT etl.log_error('loader', '22000', 'bad row', p_row_payload => %s::jsonb)",
        [deep_payload(10_000)],
    ).fetchone()[0]
    conn.execute("RESET ROLE")
    stored = conn.execute(
        "SELECT row_payload::text FROM etl.error_log WHERE error_id = %s", [error_id]
    ).fetchone()[0]
    assert stored.startswith('{"data": [[[[') and stored.endswith('"password": "[redacted]"}')
    assert '"[redacted: nested too deep to check]"' in stored
    assert len(re.match(r'\{"data": (\[*)', stored)[1]) == 99  # 99 arrays kept, then the marker
    assert "deep-s3cr3t" not in stored and "hunter2" not in stored


def test_a_payload_that_cannot_be_redacted_is_not_stored_and_the_logger_still_returns(
    conn: psycopg.Connection,
) -> None:
    """The last guard: should redaction fail all the same (here: a stack limit far below the
    default), the row is logged with a note instead of the payload, never unredacted."""
    conn.execute("SET max_stack_depth = '100kB'")
    error_id = conn.execute(
        "SELECT etl.log_error('t', '22000', 'm', p_row_key => '{\"id\": 1}',"
        " p_row_payload => %s::jsonb)",
        [deep_payload(90)],
    ).fetchone()[0]
    key, stored, message = conn.execute(
        "SELECT row_key, row_payload, message FROM etl.error_log WHERE error_id = %s", [error_id]
    ).fetchone()
    assert message == "m" and key == {"id": 1}
    assert list(stored) == ["not_stored"]
    assert stored["not_stored"].startswith("redaction failed: stack depth limit exceeded")
