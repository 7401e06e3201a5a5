"""Where the file importer's files come from: list the files of a source and download one, over
FTP, SFTP, a local folder or S3.

A source is named by a URL (``open_source``)::

    ftp://user:password@host:21/inbox          FTP, passive mode, binary transfers
    sftp://user:password@host:22/inbox         SFTP; or ?key_file=/path/id_ed25519
        &known_hosts=/path/known_hosts         the host key must be in this file (default
                                               ~/.ssh/known_hosts)
        &insecure_host_key=1                   accept ANY host key (see SftpSource)
    file:///srv/drop/inbox                     a local (or mounted) directory
    s3://bucket/inbox                          S3: FILES_S3_ENDPOINT_URL, else S3_ENDPOINT_URL
                                               (AWS when neither is set), AWS_* credentials

The URL comes from the environment, so do its credentials. A password may also be kept out of
the URL: FILES_SOURCE_PASSWORD (FTP, SFTP), FILES_SOURCE_KEY_PASSPHRASE (an encrypted SFTP key).
The path of an FTP or SFTP URL is absolute on the server; none means the login directory.

Secrets never appear in a message: every error raised here is one line, scrubbed of the source's
password and of every secret harness.config knows of, and chained to nothing (``from None``),
so a traceback does not show the library's own exception either.

Errors: ``SourceConfigError`` (a bad URL or setting: fix the configuration), and
``SourceUnavailable`` with ``error_class``: "network" (refused, timed out, dropped, cut short:
retry), "auth" (credentials or host key refused: do not retry blindly), "missing" (the file or
folder is not there: re-list). ``SourceAuthFailed`` and ``SourceFileMissing`` are the
subclasses for the last two.

Downloads stream in chunks (memory stays flat), into a temporary file beside the target that
is renamed to it only when the transfer ended cleanly and the byte count equals the listed
size: a partial download never looks complete, and a retry starts again from the beginning.

A source holds one connection, opened at first use and reopened after a network error; it is
not thread-safe (one per thread).
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import ftplib
import os
import posixpath
import socket
import stat
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, Protocol, Self, TypeVar, runtime_checkable
from urllib.parse import parse_qsl, quote, quote_plus, unquote, urlsplit

from harness.config import first_line, scrub, secret_values

CHUNK = 256 * 1024
DEFAULT_TIMEOUT = 30.0
PASSWORD_VARIABLE = "FILES_SOURCE_PASSWORD"
PASSPHRASE_VARIABLE = "FILES_SOURCE_KEY_PASSPHRASE"
S3_ENDPOINT_VARIABLES = ("FILES_S3_ENDPOINT_URL", "S3_ENDPOINT_URL")
S3_REGION_VARIABLES = ("FILES_S3_REGION", "AWS_DEFAULT_REGION")
GLOB_CHARACTERS = frozenset("*?[")

T = TypeVar("T")


@dataclass(frozen=True)
class RemoteFile:
    """A file of a source: ``path`` relative to the source's root ('/' separators), ``size`` in
    bytes, ``modified`` in UTC."""

    path: str
    size: int
    modified: datetime


class SourceConfigError(ValueError):
    """The source's URL or settings are wrong; the one-line message says what to fix."""


class SourceUnavailable(Exception):
    """The source failed: ``error_class`` is "network" (retry later), "auth" or "missing"."""

    error_class = "network"

    def __init__(self, message: str) -> None:
        super().__init__(message)


class SourceAuthFailed(SourceUnavailable):
    """The server refused the credentials, or its host key is not the one expected."""

    error_class = "auth"


class SourceFileMissing(SourceUnavailable):
    """The file (or folder) is not there: removed since it was listed, or never was."""

    error_class = "missing"


class SourceFileChanged(SourceUnavailable):
    """The file is not the one listed any more (more bytes came than listed)."""

    error_class = "changed"


@runtime_checkable
class Source(Protocol):
    def list(self, pattern: str = "*") -> list[RemoteFile]:
        """The files matching ``pattern`` (fnmatch on the name; 'sub/*.csv' looks one folder
        down), sorted by path. Not recursive."""
        ...

    def fetch(self, file: RemoteFile, into: Path) -> int:
        """Download ``file`` to ``into``; the bytes written (== file.size)."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None: ...


class _Counting:
    """A writable that counts what passes through it."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.written = 0

    def write(self, data: bytes) -> None:
        self.out.write(data)
        self.written += len(data)


class _BaseSource:
    """What every kind shares: pattern handling, the temporary-file-then-rename download, error
    translation and scrubbing, the context manager. Subclasses implement ``_entries``,
    ``_download``, ``_classify`` and ``_disconnect``."""

    def __init__(self, label: str, secrets: Iterable[str | None] = ()) -> None:
        self.label = label  # what messages call the source: never holds a secret
        self._secrets = _variants(s for s in secrets if s)

    # --- the public API

    def list(self, pattern: str = "*") -> list[RemoteFile]:
        directory, _, name_pattern = pattern.strip().rpartition("/")
        directory = _relative(directory, "the folder of the pattern")
        if GLOB_CHARACTERS & set(directory):
            raise SourceConfigError(
                f"pattern {pattern!r}: only the file name may hold wildcards, not the folder"
            )
        if not name_pattern:
            raise SourceConfigError(f"pattern {pattern!r} names no file: end it with e.g. *.csv")
        entries = self._guard(lambda: list(self._entries(directory)), f"listing {directory}/")
        found = [
            f for f in entries if fnmatch.fnmatchcase(posixpath.basename(f.path), name_pattern)
        ]
        return sorted(found, key=lambda f: f.path)

    def fetch(self, file: RemoteFile, into: Path) -> int:
        into = Path(into)
        path = _relative(file.path, "the file's path")
        descriptor, temporary = tempfile.mkstemp(
            prefix=f".{into.name}.", suffix=".part", dir=into.parent
        )
        try:
            with os.fdopen(descriptor, "wb") as out:
                counter = _Counting(out)
                self._guard(lambda: self._download(path, counter), f"fetching {path}")
                out.flush()
                os.fsync(out.fileno())
            if counter.written > file.size:
                raise SourceFileChanged(
                    f"{self.label}: fetching {path}: {counter.written} bytes came, the listing said"
                    f" {file.size}: the file changed since it was listed; its new version is"
                    " listed as a file of its own"
                )
            if counter.written != file.size:
                raise SourceUnavailable(
                    f"{self.label}: fetching {path}: the transfer ended after {counter.written}"
                    f" of {file.size} bytes (cut short, or the file changed since it was listed);"
                    " nothing was kept, list and fetch again"
                )
            os.replace(temporary, into)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return counter.written

    def close(self) -> None:
        self._disconnect()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    # --- what each kind implements

    def _entries(self, directory: str) -> Iterable[RemoteFile]:
        """The regular files of ``directory`` (relative to the root, '' for the root itself)."""
        raise NotImplementedError

    def _download(self, path: str, out: _Counting) -> None:
        raise NotImplementedError

    def _classify(self, error: Exception) -> type[SourceUnavailable] | None:
        """The error to raise for a library's exception; None: not a source fault, re-raise."""
        raise NotImplementedError

    def _disconnect(self) -> None:
        """Drop the connection (quietly); the next call opens a new one."""

    # --- shared machinery

    def _guard(self, action: Callable[[], T], doing: str) -> T:
        try:
            return action()
        except (SourceUnavailable, SourceConfigError):
            raise
        except Exception as error:
            kind = self._classify(error)
            if kind is None:
                raise
            if kind is SourceUnavailable:  # the connection may be half-dead: start afresh
                self._disconnect()
            raise kind(self._message(doing, error)) from None

    def _message(self, doing: str, error: BaseException) -> str:
        detail = first_line(error)
        if detail != type(error).__name__:
            detail = f"{detail} ({type(error).__name__})"
        return self._scrub(f"{self.label}: {doing}: {detail}")

    def _scrub(self, text: str) -> str:
        return scrub(text, secret_values() | self._secrets)


def _variants(values: Iterable[str]) -> frozenset[str]:
    """A secret as it may be printed: raw, percent-encoded."""
    found: set[str] = set()
    for value in values:
        found |= {value, quote(value, safe=""), quote_plus(value)}
    return frozenset(found)


def _relative(path: str, what: str) -> str:
    """A path relative to a source's root, normalised; '' for the root. No way out of it."""
    parts = [p for p in path.replace("\\", "/").split("/") if p not in ("", ".")]
    if ".." in parts:
        raise SourceConfigError(f"{what} may not hold '..': {path!r}")
    return "/".join(parts)


def _join(root: str, relative: str) -> str:
    if not relative:
        return root or "."
    return posixpath.join(root, relative) if root else relative


def _os_error_class(error: OSError) -> type[SourceUnavailable]:
    if error.errno == errno.ENOENT or isinstance(error, FileNotFoundError):
        return SourceFileMissing
    if error.errno in (errno.EACCES, errno.EPERM):
        return SourceAuthFailed
    return SourceUnavailable


# --- FTP


def _mdtm(value: str) -> datetime:
    """An FTP time (MLSD modify fact, MDTM reply): YYYYMMDDHHMMSS[.sss], UTC."""
    whole = value.strip().split(".", 1)[0]
    return datetime.strptime(whole, "%Y%m%d%H%M%S").replace(tzinfo=UTC)


class FtpSource(_BaseSource):
    """An FTP server: passive mode, binary transfers, a timeout on every socket operation.
    Listing uses MLSD when the server announces MLST in FEAT, else NLST with SIZE and MDTM."""

    def __init__(
        self,
        host: str,
        port: int = 21,
        user: str = "anonymous",
        password: str = "",
        root: str = "",
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        super().__init__(f"ftp {user}@{host}:{port}", [password])
        self.host, self.port, self.user, self.root, self.timeout = host, port, user, root, timeout
        self._password = password
        self._ftp: ftplib.FTP | None = None
        self._mlsd = False

    def _connected(self) -> ftplib.FTP:
        if self._ftp is not None:
            return self._ftp
        ftp = ftplib.FTP(timeout=self.timeout)
        try:
            ftp.connect(self.host, self.port, timeout=self.timeout)
            ftp.login(self.user, self._password)
            ftp.set_pasv(True)
            ftp.voidcmd("TYPE I")
            try:
                features = ftp.sendcmd("FEAT")
            except ftplib.error_perm:  # a server too old for FEAT has no MLSD either
                features = ""
        except BaseException:
            ftp.close()
            raise
        self._mlsd = any(line.strip().upper().startswith("MLST") for line in features.splitlines())
        self._ftp = ftp
        return ftp

    def _entries(self, directory: str) -> Iterable[RemoteFile]:
        ftp = self._connected()
        where = _join(self.root, directory)
        if self._mlsd:
            for name, facts in ftp.mlsd(where, facts=["type", "size", "modify"]):
                if facts.get("type", "").lower() == "file":
                    path = f"{directory}/{name}" if directory else name
                    yield RemoteFile(path, int(facts["size"]), _mdtm(facts["modify"]))
            return
        try:
            names = ftp.nlst(where)
        except ftplib.error_perm as error:  # some servers answer an empty folder with 550
            if "no files" in str(error).lower():
                return
            raise
        ftp.voidcmd("TYPE I")  # NLST switched to ASCII; SIZE is refused there
        for listed in names:
            name = posixpath.basename(listed.rstrip("/"))
            if name in ("", ".", ".."):
                continue
            remote = _join(where, name) if where != "." else name
            try:
                size = ftp.size(remote)
            except ftplib.error_perm:  # a folder (or a file gone since NLST): not listed
                continue
            modified = _mdtm(ftp.sendcmd(f"MDTM {remote}")[4:])
            path = f"{directory}/{name}" if directory else name
            yield RemoteFile(path, int(size or 0), modified)

    def _download(self, path: str, out: _Counting) -> None:
        ftp = self._connected()
        ftp.retrbinary(f"RETR {_join(self.root, path)}", out.write, blocksize=CHUNK)

    def _classify(self, error: Exception) -> type[SourceUnavailable] | None:
        if isinstance(error, ftplib.error_perm):
            code = str(error)[:3]
            if code in ("530", "532"):
                return SourceAuthFailed
            if code == "550" or "no such" in str(error).lower():  # pyftpdlib's MLSD: 501
                return SourceFileMissing
            return SourceUnavailable
        if isinstance(error, ftplib.Error | EOFError):
            return SourceUnavailable
        if isinstance(error, OSError):
            return SourceUnavailable
        return None

    def _disconnect(self) -> None:
        ftp, self._ftp = self._ftp, None
        if ftp is None:
            return
        try:
            ftp.quit()
        except Exception:
            ftp.close()


# --- SFTP


class SftpSource(_BaseSource):
    """An SSH server's SFTP subsystem (paramiko), by password or key file.

    The server's host key must match an entry of ``known_hosts`` (an OpenSSH known_hosts file;
    default ~/.ssh/known_hosts; entries for a port other than 22 are written ``[host]:port``).
    ``insecure_host_key=True`` accepts any host key instead: whoever can intercept the
    connection can then pose as the server, collect the password and serve forged files. Use it
    only for tests or on a closed network where the path to the server is trusted.
    """

    def __init__(
        self,
        host: str,
        port: int = 22,
        user: str = "",
        password: str | None = None,
        key_file: Path | None = None,
        passphrase: str | None = None,
        root: str = "",
        known_hosts: Path | None = None,
        insecure_host_key: bool = False,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        super().__init__(f"sftp {user}@{host}:{port}", [password, passphrase])
        if not user:
            raise SourceConfigError("an SFTP source needs a user: sftp://user@host/path")
        if password is None and key_file is None:
            raise SourceConfigError(
                f"the SFTP source needs a password ({PASSWORD_VARIABLE}, or in the URL)"
                " or a key file (?key_file=/path)"
            )
        if key_file is not None and not Path(key_file).is_file():
            raise SourceConfigError(f"SFTP key file {str(key_file)!r} does not exist")
        if insecure_host_key and known_hosts is not None:
            raise SourceConfigError("known_hosts and insecure_host_key exclude each other")
        if not insecure_host_key:
            known_hosts = Path(known_hosts or Path.home() / ".ssh" / "known_hosts")
            if not known_hosts.is_file():
                raise SourceConfigError(
                    f"known_hosts file {str(known_hosts)!r} does not exist: pass"
                    " ?known_hosts=/path holding the server's host key"
                )
        self.host, self.port, self.user, self.root, self.timeout = host, port, user, root, timeout
        self.key_file = key_file
        self.known_hosts = known_hosts
        self.insecure_host_key = insecure_host_key
        self._password = password
        self._passphrase = passphrase
        self._transport: Any = None
        self._sftp: Any = None

    def _connected(self) -> Any:
        import paramiko

        if self._sftp is not None:
            return self._sftp
        sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        transport = paramiko.Transport(sock)
        try:
            transport.banner_timeout = self.timeout
            transport.auth_timeout = self.timeout
            transport.handshake_timeout = self.timeout
            transport.start_client(timeout=self.timeout)
            self._check_host_key(transport.get_remote_server_key())
            if self.key_file is not None:
                key = paramiko.PKey.from_path(self.key_file, self._passphrase)
                transport.auth_publickey(self.user, key)
            else:
                transport.auth_password(self.user, self._password or "")
            sftp = paramiko.SFTPClient.from_transport(transport)
            if sftp is None:
                raise paramiko.SSHException("the server refused the SFTP subsystem")
            sftp.get_channel().settimeout(self.timeout)
        except BaseException:
            transport.close()
            raise
        self._transport, self._sftp = transport, sftp
        return sftp

    def _check_host_key(self, key: Any) -> None:
        import paramiko

        if self.insecure_host_key:
            return
        entry = paramiko.HostKeys(str(self.known_hosts)).lookup(
            self.host if self.port == 22 else f"[{self.host}]:{self.port}"
        )
        if entry is None or entry.get(key.get_name()) != key:
            raise SourceAuthFailed(
                f"{self.label}: the server's {key.get_name()} host key"
                f" ({key.fingerprint}) is not the one in {self.known_hosts}: refusing to connect"
            )

    def _entries(self, directory: str) -> Iterable[RemoteFile]:
        sftp = self._connected()
        for attributes in sftp.listdir_attr(_join(self.root, directory)):
            if attributes.st_mode is None or not stat.S_ISREG(attributes.st_mode):
                continue
            name = attributes.filename
            yield RemoteFile(
                f"{directory}/{name}" if directory else name,
                int(attributes.st_size or 0),
                datetime.fromtimestamp(attributes.st_mtime or 0, UTC),
            )

    def _download(self, path: str, out: _Counting) -> None:
        sftp = self._connected()
        remote = sftp.open(_join(self.root, path), "rb")
        read_ahead = _ReadAhead(remote)
        try:
            read_ahead.start()
            while chunk := remote.read(CHUNK):
                out.write(chunk)
        except BaseException:
            # the connection goes first, so that the read-ahead's next request fails
            self._disconnect()
            read_ahead.abandon()
            raise
        finally:
            with contextlib.suppress(Exception):
                remote.close()

    def _classify(self, error: Exception) -> type[SourceUnavailable] | None:
        import paramiko

        if isinstance(error, paramiko.AuthenticationException | paramiko.BadHostKeyException):
            return SourceAuthFailed
        if isinstance(error, paramiko.SSHException | EOFError):
            return SourceUnavailable
        if isinstance(error, OSError):
            return _os_error_class(error)
        return None

    def _disconnect(self) -> None:
        sftp, transport = self._sftp, self._transport
        self._sftp = self._transport = None
        for closable in (sftp, transport):
            if closable is not None:
                with contextlib.suppress(Exception):
                    closable.close()


class _ReadAhead:
    """paramiko's read-ahead of one remote file (at most 64 requests of 32 KiB in flight, so
    memory stays bounded), safe to abandon. paramiko sends the requests from a thread of its
    own, which dies with a traceback on stderr when the connection drops, and which waits for a
    free slot in a loop that nobody ends once the reads stop. Here its failures are swallowed
    (the reads report them), and abandon() empties its count of requests in flight: it sends
    once more, fails on the closed connection, and ends. (This reaches into paramiko's
    SFTPFile: it starts the thread with the instance's ``_prefetch_thread``, and counts the
    requests in flight in ``_prefetch_extents`` under ``_prefetch_lock``.)"""

    REQUESTS = 64

    def __init__(self, remote: Any) -> None:
        self.remote = remote
        self._send = remote._prefetch_thread
        remote._prefetch_thread = self._send_read_requests

    def start(self) -> None:
        self.remote.prefetch(max_concurrent_requests=self.REQUESTS)

    def _send_read_requests(self, *args: Any) -> None:
        import paramiko

        with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
            self._send(*args)

    def abandon(self) -> None:
        lock = getattr(self.remote, "_prefetch_lock", None)
        extents = getattr(self.remote, "_prefetch_extents", None)
        if lock is not None and extents is not None:
            with lock:
                extents.clear()


# --- a local folder


class FolderSource(_BaseSource):
    """A directory of this machine (or a mount)."""

    def __init__(self, root: Path) -> None:
        super().__init__(f"folder {root}")
        self.root = Path(root)

    def _entries(self, directory: str) -> Iterable[RemoteFile]:
        with os.scandir(self.root / directory) as entries:
            for entry in entries:
                if entry.is_file():
                    info = entry.stat()
                    yield RemoteFile(
                        f"{directory}/{entry.name}" if directory else entry.name,
                        info.st_size,
                        datetime.fromtimestamp(info.st_mtime, UTC),
                    )

    def _download(self, path: str, out: _Counting) -> None:
        with open(self.root / path, "rb") as source:
            while chunk := source.read(CHUNK):
                out.write(chunk)

    def _classify(self, error: Exception) -> type[SourceUnavailable] | None:
        if isinstance(error, OSError):
            return _os_error_class(error)
        return None


# --- S3


S3_AUTH_CODES = frozenset(
    {
        "AccessDenied",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "InvalidToken",
        "InvalidClientTokenId",
        "403",
    }
)
S3_MISSING_CODES = frozenset({"404", "NoSuchKey", "NotFound", "NoSuchBucket"})


class S3Source(_BaseSource):
    """The objects under ``prefix`` of an S3 bucket (any S3-compatible store); credentials are
    the AWS_* variables, read by boto3. Timeouts and retries are those of harness.s3.make_client
    (botocore's 60 s socket timeout, 3 attempts)."""

    def __init__(
        self, bucket: str, prefix: str = "", endpoint_url: str | None = None, region: str = ""
    ) -> None:
        super().__init__(f"s3://{bucket}/{prefix}".rstrip("/"))
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url
        self.region = region or "us-east-1"
        self._client: Any = None

    def _connected(self) -> Any:
        from harness.s3 import make_client

        if self._client is None:
            self._client = make_client(self.endpoint_url, self.region)
        return self._client

    def _key(self, relative: str) -> str:
        return _join(self.prefix, relative) if relative else self.prefix

    def _entries(self, directory: str) -> Iterable[RemoteFile]:
        client = self._connected()
        folder = self._key(directory)
        prefix = f"{folder}/" if folder else ""
        pages = client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix, Delimiter="/"
        )
        for page in pages:
            for item in page.get("Contents", []):
                name = item["Key"][len(prefix) :]
                if name and "/" not in name:
                    yield RemoteFile(
                        f"{directory}/{name}" if directory else name,
                        int(item["Size"]),
                        item["LastModified"].astimezone(UTC),
                    )

    def _download(self, path: str, out: _Counting) -> None:
        body = self._connected().get_object(Bucket=self.bucket, Key=self._key(path))["Body"]
        try:
            for chunk in body.iter_chunks(CHUNK):
                out.write(chunk)
        finally:
            body.close()

    def _classify(self, error: Exception) -> type[SourceUnavailable] | None:
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        if isinstance(error, ClientError):
            code = str(error.response.get("Error", {}).get("Code", ""))
            if code in S3_MISSING_CODES:
                return SourceFileMissing
            if code in S3_AUTH_CODES:
                return SourceAuthFailed
            return SourceUnavailable
        if isinstance(error, NoCredentialsError):
            return SourceAuthFailed
        if isinstance(error, BotoCoreError | OSError):
            return SourceUnavailable
        return None

    def _disconnect(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()


# --- URLs


def open_source(url: str, timeout: float = DEFAULT_TIMEOUT) -> Source:
    """The source a URL names (see the module's docstring); nothing is connected yet: the first
    list or fetch connects. A bad URL raises SourceConfigError, whose message never repeats the
    URL's password."""
    if not isinstance(url, str) or "://" not in url:
        raise SourceConfigError(
            "a source URL starts with ftp://, sftp://, file:// or s3://, e.g. sftp://user@host/in"
        )
    password = _raw_password(url)
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise SourceConfigError(
            "the source URL is malformed: check its host and that its port is a number"
            " from 1 to 65535"
        ) from None
    scheme = parts.scheme.lower()
    options = _options(parts.query, scheme)
    path = unquote(parts.path)

    if scheme in ("ftp", "sftp"):
        host = parts.hostname
        if not host:
            raise SourceConfigError(f"the {scheme}:// URL names no host: {scheme}://user@host/dir")
        user = unquote(parts.username or "")
        secret = password if password is not None else os.environ.get(PASSWORD_VARIABLE)
        root = path.rstrip("/") or ("/" if path else "")
        if scheme == "ftp":
            return FtpSource(host, port or 21, user or "anonymous", secret or "", root, timeout)
        key_file = options.get("key_file")
        return SftpSource(
            host,
            port or 22,
            user,
            password=secret if secret is not None or not key_file else None,
            key_file=Path(key_file) if key_file else None,
            passphrase=os.environ.get(PASSPHRASE_VARIABLE) or None,
            root=root,
            known_hosts=Path(options["known_hosts"]) if options.get("known_hosts") else None,
            insecure_host_key=_flag(options.get("insecure_host_key", "0")),
            timeout=timeout,
        )
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise SourceConfigError(
                "a file:// URL names a local folder, no host: file:///absolute/folder"
            )
        if not path.startswith("/"):
            raise SourceConfigError("a file:// URL needs an absolute path: file:///srv/inbox")
        return FolderSource(Path(path))
    if scheme == "s3":
        if not parts.hostname or parts.username or parts.password or port:
            raise SourceConfigError("an s3:// URL is s3://bucket/prefix (credentials: AWS_*)")
        endpoint = next((os.environ[v] for v in S3_ENDPOINT_VARIABLES if os.environ.get(v)), None)
        region = next((os.environ[v] for v in S3_REGION_VARIABLES if os.environ.get(v)), "")
        return S3Source(parts.netloc, path.strip("/"), endpoint, region)
    raise SourceConfigError(
        f"unsupported source scheme {scheme!r}: use ftp://, sftp://, file:// or s3://"
    )


QUERY_OPTIONS = {"sftp": ("key_file", "known_hosts", "insecure_host_key")}


def _options(query: str, scheme: str) -> dict[str, str]:
    allowed = QUERY_OPTIONS.get(scheme, ())
    options: dict[str, str] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name not in allowed:
            accepted = ", ".join(allowed) if allowed else "none"
            # the name only: a value might be a secret put in the wrong place
            raise SourceConfigError(
                f"unknown parameter {name[:40]!r} in the {scheme}:// URL (accepted: {accepted})"
            )
        options[name] = value
    return options


def _flag(value: str) -> bool:
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off", ""):
        return False
    raise SourceConfigError("insecure_host_key must be 1 or 0")


def _raw_password(url: str) -> str | None:
    """The decoded password of a URL's userinfo, read without urllib (which rejects some)."""
    after = url.partition("://")[2]
    cut = min((i for i in (after.find("/"), after.find("?")) if i >= 0), default=len(after))
    userinfo, at, _ = after[:cut].rpartition("@")
    if not at or ":" not in userinfo:
        return None
    return unquote(userinfo.partition(":")[2])
