"""The file importer's sources against real servers on 127.0.0.1: FTP (pyftpdlib, with and
without MLSD), SFTP (asyncssh), a folder, S3 (moto). Every message of a failure is checked for
the password."""

from __future__ import annotations

import hashlib
import os
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from harness.files.sources import (
    FolderSource,
    FtpSource,
    RemoteFile,
    S3Source,
    SftpSource,
    Source,
    SourceAuthFailed,
    SourceConfigError,
    SourceFileMissing,
    SourceUnavailable,
    open_source,
)
from harness.s3 import make_client
from tests.cli.support import closed_port
from tests.files.servers import (
    CuttingSFTPServer,
    ftp_server,
    sftp_server,
    silent_server,
)

USER = "importer"
PASSWORD = "s3cret-Pa55w0rd"
WRONG_PASSWORD = "Wr0ng-Secret-77"
MODIFIED = datetime(2024, 3, 4, 5, 6, 7, tzinfo=UTC)
SMALL = {
    "a.csv": b"id,name\n1,alpha\n",
    "b.csv": b"id,name\n2,beta\n3,gamma\n",
    "notes.txt": b"not a csv\n",
    "sub/c.csv": b"id\n4\n",
}
BIG_SIZE = 5 * 1024 * 1024
KINDS = ["ftp", "ftp-nlst", "sftp", "folder", "s3"]
FOLDER_KINDS = [kind for kind in KINDS if kind != "s3"]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def big() -> bytes:
    return os.urandom(BIG_SIZE)


@pytest.fixture
def tree(tmp_path: Path, big: bytes) -> dict[str, bytes]:
    """The files every source serves, stamped MODIFIED: SMALL, big.bin and an empty folder."""
    files = {**SMALL, "big.bin": big}
    root = tmp_path / "served"
    (root / "empty-folder").mkdir(parents=True)
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        os.utime(path, (MODIFIED.timestamp(), MODIFIED.timestamp()))
    return files


@dataclass
class Kind:
    """One kind of source under test: how to name it and how to take a file away from it."""

    name: str
    url: Callable[..., str]  # url(password=None, timeout-free); the right password by default
    remove: Callable[[str], None]
    exact_times: bool = True


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest, tmp_path: Path, tree: dict[str, bytes]) -> Iterator[Kind]:
    root = tmp_path / "served"

    def remove(path: str) -> None:
        (root / path).unlink()

    if request.param.startswith("ftp"):
        with ftp_server(root, USER, PASSWORD, mlsd=request.param == "ftp") as server:
            yield Kind(request.param, lambda password=None: server.url("/", password), remove)
    elif request.param == "sftp":
        with sftp_server(root, USER, PASSWORD) as server:
            known_hosts = tmp_path / "known_hosts"
            known_hosts.write_text(server.known_hosts_line())
            query = f"known_hosts={known_hosts}"
            yield Kind("sftp", lambda password=None: server.url("/", password, query), remove)
    elif request.param == "folder":
        yield Kind("folder", lambda password=None: f"file://{root}", remove)
    else:
        s3 = request.getfixturevalue("s3_bucket")
        for name, data in tree.items():
            s3.put_object(Bucket=s3.bucket, Key=f"inbox/{name}", Body=data)

        def remove_object(path: str) -> None:
            s3.delete_object(Bucket=s3.bucket, Key=f"inbox/{path}")

        yield Kind("s3", lambda password=None: f"s3://{s3.bucket}/inbox", remove_object, False)


class _Bucket:
    def __init__(self, client: object, bucket: str) -> None:
        self.client, self.bucket = client, bucket

    def __getattr__(self, name: str) -> object:
        return getattr(self.client, name)


@pytest.fixture
def s3_bucket(s3_endpoint: str, s3_credentials: None, monkeypatch: pytest.MonkeyPatch) -> _Bucket:
    monkeypatch.setenv("FILES_S3_ENDPOINT_URL", s3_endpoint)
    client = make_client(s3_endpoint)
    bucket = f"files-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    return _Bucket(client, bucket)


def assert_no_secret(error: BaseException) -> None:
    """Neither the password nor the wrong one appears anywhere the error may be printed."""
    printed = "".join(traceback.format_exception(error)) + repr(error) + str(error)
    for secret in (PASSWORD, WRONG_PASSWORD):
        assert secret not in printed
    assert "\n" not in str(error)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


# --- every kind


def test_list_with_pattern(kind: Kind) -> None:
    with open_source(kind.url()) as source:
        assert isinstance(source, Source)
        csvs = source.list("*.csv")
        everything = source.list("*")
        below = source.list("sub/*.csv")
    assert [(f.path, f.size) for f in csvs] == [("a.csv", 16), ("b.csv", 23)]
    assert [f.path for f in everything] == ["a.csv", "b.csv", "big.bin", "notes.txt"]
    assert [(f.path, f.size) for f in below] == [("sub/c.csv", 5)]
    for file in everything + below:
        assert file.modified.utcoffset() == timedelta(0)
        if kind.exact_times:
            assert file.modified == MODIFIED
        else:  # S3 stamps the upload
            assert abs(datetime.now(UTC) - file.modified) < timedelta(minutes=5)


def test_fetch_small_file(kind: Kind, tmp_path: Path) -> None:
    into = tmp_path / "got" / "a.csv"
    into.parent.mkdir()
    with open_source(kind.url()) as source:
        [file] = source.list("a.csv")
        written = source.fetch(file, into)
    assert written == len(SMALL["a.csv"]) == into.stat().st_size
    assert into.read_bytes() == SMALL["a.csv"]
    assert sha256(into.read_bytes()) == sha256(SMALL["a.csv"])
    assert leftovers(into.parent) == []


def test_fetch_5mb_file_streams(kind: Kind, tmp_path: Path, big: bytes) -> None:
    into = tmp_path / "big.bin"
    with open_source(kind.url()) as source:
        [file] = source.list("big.*")
        assert file.size == BIG_SIZE
        assert source.fetch(file, into) == BIG_SIZE
    assert sha256(into.read_bytes()) == sha256(big)
    assert leftovers(tmp_path) == []


def test_file_removed_between_list_and_fetch_is_missing(kind: Kind, tmp_path: Path) -> None:
    into = tmp_path / "b.csv"
    with open_source(kind.url()) as source:
        [file] = source.list("b.csv")
        kind.remove("b.csv")
        with pytest.raises(SourceFileMissing) as caught:
            source.fetch(file, into)
        assert caught.value.error_class == "missing"
        assert "b.csv" in str(caught.value)
        assert_no_secret(caught.value)
        assert not into.exists()
        assert leftovers(tmp_path) == []
        # the connection survived: the next file comes
        [other] = source.list("a.csv")
        assert source.fetch(other, tmp_path / "a.csv") == len(SMALL["a.csv"])


# S3 has no folders: a prefix without keys is no keys, neither missing nor an empty folder
@pytest.mark.parametrize("kind", FOLDER_KINDS, indirect=True)
def test_missing_folder_is_missing(kind: Kind) -> None:
    with open_source(kind.url()) as source, pytest.raises(SourceFileMissing) as caught:
        source.list("no-such-folder/*.csv")
    assert caught.value.error_class == "missing"
    assert_no_secret(caught.value)


@pytest.mark.parametrize("kind", FOLDER_KINDS, indirect=True)
def test_empty_folder_lists_nothing(kind: Kind) -> None:
    with open_source(kind.url()) as source:
        assert source.list("empty-folder/*") == []


@pytest.mark.parametrize("kind", ["ftp", "ftp-nlst", "sftp"], indirect=True)
def test_wrong_password_is_auth_and_never_printed(kind: Kind) -> None:
    with open_source(kind.url(WRONG_PASSWORD)) as source, pytest.raises(SourceAuthFailed) as caught:
        source.list("*")
    assert caught.value.error_class == "auth"
    assert isinstance(caught.value, SourceUnavailable)
    assert f"{USER}@127.0.0.1" in str(caught.value)
    assert_no_secret(caught.value)


def test_s3_wrong_secret_is_auth(s3_bucket: _Bucket, monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.core.authorization import enable_iam_authentication

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAWRONGWRONGWRONG1")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", WRONG_PASSWORD)
    with (
        enable_iam_authentication(),
        open_source(f"s3://{s3_bucket.bucket}/inbox") as source,
        pytest.raises(SourceAuthFailed) as caught,
    ):
        source.list("*")
    assert caught.value.error_class == "auth"
    assert_no_secret(caught.value)


@pytest.mark.parametrize("scheme", ["ftp", "sftp"])
def test_server_not_listening_is_network_quickly(scheme: str, tmp_path: Path) -> None:
    url = f"{scheme}://{USER}:{PASSWORD}@127.0.0.1:{closed_port()}/?insecure_host_key=1"
    url = url if scheme == "sftp" else url.split("?")[0]
    started = time.monotonic()
    with open_source(url, timeout=2) as source, pytest.raises(SourceUnavailable) as caught:
        source.list("*")
    assert time.monotonic() - started < 2
    assert caught.value.error_class == "network"
    assert type(caught.value) is SourceUnavailable
    assert_no_secret(caught.value)


@pytest.mark.parametrize("scheme", ["ftp", "sftp"])
def test_silent_server_times_out_as_network(scheme: str) -> None:
    with silent_server() as port:
        url = f"{scheme}://{USER}:{PASSWORD}@127.0.0.1:{port}/"
        url += "?insecure_host_key=1" if scheme == "sftp" else ""
        started = time.monotonic()
        with open_source(url, timeout=0.5) as source, pytest.raises(SourceUnavailable) as caught:
            source.list("*")
    assert 0.4 < time.monotonic() - started < 5
    assert caught.value.error_class == "network"
    assert_no_secret(caught.value)


def test_s3_endpoint_not_listening_is_network(
    s3_credentials: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FILES_S3_ENDPOINT_URL", f"http://127.0.0.1:{closed_port()}")
    started = time.monotonic()
    with open_source("s3://bucket/inbox") as source, pytest.raises(SourceUnavailable) as caught:
        source.list("*")
    assert time.monotonic() - started < 15  # make_client's 3 attempts, with backoff
    assert caught.value.error_class == "network"


def test_folder_not_there_is_missing(tmp_path: Path) -> None:
    with open_source(f"file://{tmp_path}/gone") as source, pytest.raises(SourceFileMissing):
        source.list("*")


# --- FTP: a download cut short


@pytest.fixture
def ftp(tmp_path: Path, tree: dict[str, bytes]) -> Iterator:
    with ftp_server(tmp_path / "served", USER, PASSWORD) as server:
        yield server


@pytest.mark.parametrize("abort", [False, True], ids=["data-channel-closed", "server-hung-up"])
def test_ftp_download_cut_short_leaves_nothing_then_retry_succeeds(
    ftp, tmp_path: Path, big: bytes, abort: bool
) -> None:
    """data-channel-closed: after 1 MiB the server closes the data connection and reports
    success (in FTP's stream mode a dropped data connection and the end of the file look the
    same): only the size check tells. server-hung-up: 426 and the control connection closed."""
    into = tmp_path / "big.bin"
    with open_source(ftp.url()) as source:
        [file] = source.list("big.bin")
        ftp.handler.cut_after, ftp.handler.cut_abort = 1024 * 1024, abort
        with pytest.raises(SourceUnavailable) as caught:
            source.fetch(file, into)
        assert caught.value.error_class == "network"
        assert_no_secret(caught.value)
        assert not into.exists()
        assert leftovers(tmp_path) == []
        if not abort:
            assert f"after {1024 * 1024} of {BIG_SIZE} bytes" in str(caught.value)
        # the retry starts from the beginning (on a new connection when the old one died)
        assert source.fetch(file, into) == BIG_SIZE
    assert sha256(into.read_bytes()) == sha256(big)


def test_fetch_failure_keeps_an_earlier_complete_file(ftp, tmp_path: Path, big: bytes) -> None:
    into = tmp_path / "big.bin"
    into.write_bytes(b"the copy fetched yesterday")
    with open_source(ftp.url()) as source:
        [file] = source.list("big.bin")
        ftp.handler.cut_after = 1000
        with pytest.raises(SourceUnavailable):
            source.fetch(file, into)
    assert into.read_bytes() == b"the copy fetched yesterday"


def test_ftp_password_from_the_environment(ftp, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FILES_SOURCE_PASSWORD", PASSWORD)
    with open_source(f"ftp://{USER}@{ftp.host}:{ftp.port}/") as source:
        assert [f.path for f in source.list("*.csv")] == ["a.csv", "b.csv"]


# --- SFTP: the host key


@pytest.fixture
def sftp(tmp_path: Path, tree: dict[str, bytes]) -> Iterator:
    with sftp_server(tmp_path / "served", USER, PASSWORD) as server:
        yield server


# paramiko's read-ahead thread must not die with a traceback on stderr
@pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")
@pytest.mark.parametrize("how", ["cut", "hung"])
def test_sftp_connection_lost_mid_download_leaves_nothing_then_retry_succeeds(
    sftp, tmp_path: Path, big: bytes, how: str
) -> None:
    """After 1 MiB of the file the SSH connection dies (cut) or the server stops answering
    (hung): the fetch is a network failure, no partial file stays, nothing is printed, no
    read-ahead thread outlives it, and the next fetch connects again and gets the whole file."""
    into = tmp_path / "big.bin"
    with open_source(sftp.url(query="insecure_host_key=true"), timeout=1.0) as source:
        [file] = source.list("big.bin")
        if how == "cut":
            CuttingSFTPServer.cut_after = 1024 * 1024
        else:
            CuttingSFTPServer.hang_after = 1024 * 1024
        try:
            with pytest.raises(SourceUnavailable) as caught:
                source.fetch(file, into)
        finally:
            CuttingSFTPServer.cut_after = CuttingSFTPServer.hang_after = None
        assert caught.value.error_class == "network"
        assert_no_secret(caught.value)
        assert not into.exists()
        assert leftovers(tmp_path) == []
        assert_read_ahead_ends()
        assert source.fetch(file, into) == BIG_SIZE
    assert sha256(into.read_bytes()) == sha256(big)


def assert_read_ahead_ends() -> None:
    """paramiko's read-ahead thread of an abandoned download does not outlive it (a worker
    that lost connections would gather threads polling every 10 ms)."""
    deadline = time.monotonic() + 10
    while any(t.name.endswith("(_send_read_requests)") for t in threading.enumerate()):
        assert time.monotonic() < deadline, "the read-ahead thread is still running"
        time.sleep(0.01)


def test_sftp_host_key_not_the_known_one_is_refused(sftp, tmp_path: Path) -> None:
    import asyncssh

    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(sftp.known_hosts_line(asyncssh.generate_private_key("ssh-ed25519")))
    url = sftp.url("/", query=f"known_hosts={known_hosts}")
    with open_source(url) as source, pytest.raises(SourceAuthFailed) as caught:
        source.list("*")
    assert "host key" in str(caught.value)
    assert_no_secret(caught.value)


def test_sftp_host_unknown_to_known_hosts_is_refused(sftp, tmp_path: Path) -> None:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(sftp.known_hosts_line().replace(f"]:{sftp.port} ", "]:1 "))
    with (
        open_source(sftp.url("/", query=f"known_hosts={known_hosts}")) as source,
        pytest.raises(SourceAuthFailed),
    ):
        source.list("*")


def test_sftp_insecure_host_key_accepts_any(sftp) -> None:
    with open_source(sftp.url("/", query="insecure_host_key=1")) as source:
        assert [f.path for f in source.list("*.csv")] == ["a.csv", "b.csv"]


# --- URLs


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("gopher://host/x", "unsupported source scheme"),
        ("no-scheme-at-all", "starts with ftp://"),
        (f"ftp://{USER}:{PASSWORD}@/dir", "names no host"),
        (f"ftp://{USER}:{PASSWORD}@host:99999/dir", "port"),
        (f"ftp://{USER}:{PASSWORD}@host:http/dir", "port"),
        (f"ftp://{USER}:{PASSWORD}@host/dir?password={PASSWORD}", "unknown parameter 'password'"),
        (f"sftp://:{PASSWORD}@host/dir?insecure_host_key=1", "needs a user"),
        ("sftp://user@host/dir?insecure_host_key=1", "needs a password"),
        (f"sftp://u:{PASSWORD}@host/d?key_file=/no/such/key&insecure_host_key=1", "key file"),
        (f"sftp://u:{PASSWORD}@host/d?known_hosts=/no/such/file", "known_hosts file"),
        (f"sftp://u:{PASSWORD}@host/d?insecure_host_key=maybe", "insecure_host_key must be"),
        ("file://server/share", "no host"),
        ("s3:///prefix", "s3://bucket/prefix"),
        (f"s3://key:{PASSWORD}@bucket/prefix", "s3://bucket/prefix"),
    ],
)
def test_bad_urls_are_config_errors_without_the_password(url: str, says: str) -> None:
    with pytest.raises(SourceConfigError) as caught:
        open_source(url)
    assert isinstance(caught.value, ValueError)
    assert says in str(caught.value)
    assert_no_secret(caught.value)


def test_urls_build_the_right_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FILES_S3_ENDPOINT_URL", "http://s3.example:9000")
    ftp = open_source("ftp://bob:p%40ss@files.example:2121/in/box", timeout=5)
    assert isinstance(ftp, FtpSource)
    assert (ftp.host, ftp.port, ftp.user, ftp.root, ftp.timeout) == (
        "files.example",
        2121,
        "bob",
        "/in/box",
        5,
    )
    assert "p@ss" not in ftp.label
    anonymous = open_source("ftp://files.example")
    assert isinstance(anonymous, FtpSource)
    assert (anonymous.user, anonymous.port, anonymous.root) == ("anonymous", 21, "")
    known = tmp_path / "known_hosts"
    known.write_text("")
    sftp = open_source(f"sftp://bob:pw@h/in?known_hosts={known}")
    assert isinstance(sftp, SftpSource)
    assert (sftp.port, sftp.known_hosts, sftp.insecure_host_key) == (22, known, False)
    folder = open_source(f"file://{tmp_path}")
    assert isinstance(folder, FolderSource)
    assert folder.root == tmp_path
    s3 = open_source("s3://bucket/some/prefix/")
    assert isinstance(s3, S3Source)
    assert (s3.bucket, s3.prefix, s3.endpoint_url) == (
        "bucket",
        "some/prefix",
        "http://s3.example:9000",
    )


@pytest.mark.parametrize("pattern", ["../*", "*/x.csv", "sub/"])
def test_bad_patterns_are_config_errors(tmp_path: Path, pattern: str) -> None:
    with FolderSource(tmp_path) as source, pytest.raises(SourceConfigError):
        source.list(pattern)


def test_fetch_refuses_a_path_out_of_the_root(tmp_path: Path) -> None:
    escape = RemoteFile("../secret", 1, MODIFIED)
    with FolderSource(tmp_path) as source, pytest.raises(SourceConfigError):
        source.fetch(escape, tmp_path / "x")
