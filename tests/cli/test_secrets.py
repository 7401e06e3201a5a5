"""No secret is ever printed: a distinctive password planted in every form a connection string
can carry it (URL userinfo, ?password=, ?sslpassword=, a keyword/value string, PGPASSWORD),
then every line the real `harness` writes, on stdout and stderr, of commands that succeed and
of commands that fail, with and without --debug, is searched for it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from sqlalchemy.engine import URL, make_url

from harness.config import redacted, scrub
from tests.cli.support import closed_port, run
from tests.support.pg import a_login_role

SECRET = f"Zq7s3cret{uuid.uuid4().hex[:6]}Xv"
# a password with the characters that get escaped on the way: percent-encoding, JSON logs
ODD_SECRET = f'Zq7"s3/c@r%t{uuid.uuid4().hex[:4]}'


@pytest.fixture
def role(server_url: str) -> Iterator[str]:
    """A login role whose password is the secret (a superuser, so that every command
    succeeds whichever authentication the server uses), dropped after the test."""
    with a_login_role(server_url, f"SUPERUSER PASSWORD '{SECRET}'") as name:
        yield name


def forms(db_url: str, role: str) -> dict[str, tuple[str, dict[str, str]]]:
    """Each way to hand over the secret: (DATABASE_URL, extra environment). The server may be
    reached over TCP or a Unix socket (the embedded server: host and port in the query)."""
    url = make_url(db_url).set(username=role, password=None)
    host = url.host or url.query["host"]
    port = url.port or url.query.get("port", 5432)
    plain = url.render_as_string(hide_password=False)
    with_query = plain + ("&" if "?" in plain else "?")
    return {
        "userinfo": (url.set(password=SECRET).render_as_string(hide_password=False), {}),
        "query": (f"{with_query}password={SECRET}", {}),
        "sslpassword": (f"{with_query}password={SECRET}&sslpassword={SECRET}", {}),
        "pgpassword": (plain, {"PGPASSWORD": SECRET}),
        "keyword": (
            f"host={host} port={port} user={role} password={SECRET} dbname={url.database}",
            {},
        ),
    }


def broken(url: str) -> dict[str, str]:
    """The same URL made to fail in each way a user can get it wrong."""
    parsed = make_url(url) if "://" in url else None
    if parsed is None:
        return {"as is": url}
    rendered = parsed.render_as_string(hide_password=False)
    ways = {
        "closed port": _with_port(parsed, str(closed_port())),
        "no such database": parsed.set(database="pgferry_nowhere").render_as_string(
            hide_password=False
        ),
        "port not a number": _with_port(parsed, "abc"),
        "unknown parameter": rendered + ("&" if "?" in rendered else "?") + "passwrd=x",
    }
    if SECRET in rendered:  # libpq quotes the broken token, secret and all
        ways["bad percent-encoding"] = rendered.replace(SECRET, f"{SECRET}%zz")
    return ways


def _with_port(url: URL, port: str) -> str:
    """``url`` with another port, wherever it names one (a socket URL: in its query)."""
    if url.host is None:
        return url.update_query_dict({"port": port}).render_as_string(hide_password=False)
    rendered = url.render_as_string(hide_password=False)
    return rendered.replace(f":{url.port or 5432}/", f":{port}/", 1)


def outputs(url: str, env: dict[str, str], *commands: list[str]) -> str:
    """Everything every command printed, on both streams (a command given --debug prints its
    traceback and then the message it prints without)."""
    full_env = {
        "DATABASE_URL": url,
        "PGFERRY_PIPELINES": "shipments",
        "DETRACK_API_KEY": "k",
        "DETRACK_BASE_URL": f"http://127.0.0.1:{closed_port()}/api/v2",
        **env,
    }
    printed = []
    for command in commands:
        result = run(full_env, *command)
        printed.append(result.stdout + result.stderr)
    return "\n".join(printed)


COMMANDS = [["db", "upgrade"], ["db", "check"], ["status"], ["status", "--json"], ["run"]]


@pytest.mark.parametrize("form", ["userinfo", "query", "sslpassword", "pgpassword", "keyword"])
def test_no_command_prints_the_secret(db_url: str, role: str, form: str) -> None:
    url, env = forms(db_url, role)[form]
    printed = outputs(url, env, *COMMANDS)
    assert SECRET not in printed
    if form != "keyword":  # the keyword/value string is refused before anything connects
        assert "pgferry status" in printed  # the commands did run against the database
    for name, bad_url in broken(url).items():
        printed = outputs(bad_url, env, ["--debug", "db", "upgrade"], ["--debug", "status"])
        assert SECRET not in printed, name
        assert "error:" in printed, name


def test_a_successful_upgrade_prints_the_url_with_the_password_masked(
    db_url: str, role: str
) -> None:
    url = forms(db_url, role)["userinfo"][0]
    result = run({"DATABASE_URL": url}, "db", "upgrade")
    assert result.returncode == 0, result.stderr
    assert f"upgraded postgresql://{role}:***@" in result.stdout


def test_an_odd_password_is_masked_in_every_spelling(db_url: str) -> None:
    url = make_url(db_url)
    encoded = quote(ODD_SECRET, safe="")
    bad = f"postgresql://{url.username}:{encoded}@127.0.0.1:{closed_port()}/x"
    for args in (["status"], ["--debug", "status"], ["db", "upgrade"], ["run"]):
        result = run({"DATABASE_URL": bad, "DETRACK_API_KEY": "k"}, *args)
        printed = result.stdout + result.stderr
        assert ODD_SECRET not in printed and encoded not in printed
        assert result.returncode in (2, 3), printed


@pytest.mark.parametrize(
    "text",
    [
        f"postgresql://u:{SECRET}@h:5432/db",
        f"postgresql://u@h/db?password={SECRET}",
        f"postgresql://u@h/db?sslmode=require&sslpassword={SECRET}",
        f"host=h password={SECRET} dbname=db",
        f"host=h password='{SECRET} x' dbname=db",
        f"PGPASSWORD={SECRET}",
    ],
)
def test_redacted_masks_every_form(text: str) -> None:
    assert SECRET not in redacted(text)
    assert "***" in redacted(text)


def test_scrub_masks_known_secrets_anywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PGPASSWORD", "PGFERRY_MASK_SALT", "SMTP_PASSWORD", "DETRACK_API_KEY"):
        monkeypatch.setenv(name, f"{name}-{SECRET}")
        assert f"{name}-{SECRET}" not in scrub(f'failed: "{name}-{SECRET}" was refused')
    monkeypatch.setenv("DATABASE_URL", f"postgresql://u:{quote(ODD_SECRET, safe='')}@h/db")
    assert ODD_SECRET not in scrub(f"token: {ODD_SECRET}")
    assert "postgresql://" in scrub("postgresql://postgres@h/db")  # nothing else is touched
