"""Real file servers on 127.0.0.1 for the source tests, each in a thread of this process, on a
port the OS chooses: pyftpdlib (FTP) and asyncssh (SFTP). Each context manager returns once the
server's socket is listening, so no test waits on a clock."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncssh
from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.handlers.ftp.producers import FileProducer
from pyftpdlib.servers import FTPServer

HOST = "127.0.0.1"


class _CutReader:
    """A file whose reads stop after ``limit`` bytes: then EOF (``abort`` False) or a read
    error (``abort`` True, which pyftpdlib answers with 426 and the server hangs up)."""

    def __init__(self, file: Any, limit: int, abort: bool, on_abort: Any) -> None:
        self.file, self.left, self.abort, self.on_abort = file, limit, abort, on_abort
        self.name = getattr(file, "name", "")

    def read(self, size: int = -1) -> bytes:
        if self.left <= 0:
            if self.abort:
                self.on_abort()
                raise OSError("connection dropped by the test server")
            return b""
        data = self.file.read(self.left if size < 0 else min(size, self.left))
        self.left -= len(data)
        return data

    def close(self) -> None:
        self.file.close()


class CuttingFTPHandler(FTPHandler):
    """pyftpdlib's handler, able to cut the next download short (set on the class, one-shot):

    - ``cut_after = N, cut_abort = False``: N bytes, then the data channel closes and the
      server says "226 Transfer complete" (what a dropped data connection looks like in FTP's
      stream mode, where the end of the file IS the close of the data connection);
    - ``cut_abort = True``: N bytes, then "426" and the control connection is closed too.
    """

    cut_after: int | None = None
    cut_abort = False
    use_sendfile = False  # sendfile() would bypass the reader that cuts

    def ftp_RETR(self, file: str) -> str | None:
        handler = type(self)
        limit, handler.cut_after = handler.cut_after, None
        if limit is None:
            return super().ftp_RETR(file)
        try:
            fd = self.run_as_current_user(self.fs.open, file, "rb")
        except OSError as error:
            self.respond(f"550 {error.strerror}.")
            return None
        reader = _CutReader(
            fd, limit, handler.cut_abort, lambda: self.ioloop.call_later(0, self.close)
        )
        self.push_dtp_data(
            FileProducer(reader, self._current_type), isproducer=True, file=fd, cmd="RETR"
        )
        return file


@dataclass
class FtpServer:
    host: str
    port: int
    user: str
    password: str
    handler: type[CuttingFTPHandler]

    def url(self, path: str = "/", password: str | None = None) -> str:
        secret = self.password if password is None else password
        return f"ftp://{self.user}:{secret}@{self.host}:{self.port}{path}"


@contextmanager
def ftp_server(root: Path, user: str, password: str, *, mlsd: bool = True) -> Iterator[FtpServer]:
    """An FTP server whose one user sees ``root`` (read-only). ``mlsd=False``: a server without
    MLSD/MLST, as old ones are, so the client lists with NLST, SIZE and MDTM."""
    logging.getLogger("pyftpdlib").setLevel(logging.WARNING)
    authorizer = DummyAuthorizer()
    authorizer.add_user(user, password, str(root), perm="elr")
    # auth_failed_timeout: pyftpdlib delays a refused login 3 s; the tests need not wait
    attributes: dict[str, Any] = {"authorizer": authorizer, "timeout": 30, "auth_failed_timeout": 0}
    if not mlsd:
        attributes["proto_cmds"] = {
            name: spec
            for name, spec in FTPHandler.proto_cmds.items()
            if name not in ("MLSD", "MLST")
        }
    handler = type("TestFTPHandler", (CuttingFTPHandler,), attributes)
    server = FTPServer((HOST, 0), handler)  # bound and listening when this returns
    port = server.address[1]
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            server.ioloop.loop(timeout=0.05, blocking=False)  # one round: stop is seen
        server.close_all()

    thread = threading.Thread(target=serve, name="test-ftp", daemon=True)
    thread.start()
    try:
        yield FtpServer(HOST, port, user, password, handler)
    finally:
        stop.set()
        thread.join(10)


@dataclass
class SftpServer:
    host: str
    port: int
    user: str
    password: str
    host_key: asyncssh.SSHKey = field(repr=False)

    def url(self, path: str = "/", password: str | None = None, query: str = "") -> str:
        secret = self.password if password is None else password
        tail = f"?{query}" if query else ""
        return f"sftp://{self.user}:{secret}@{self.host}:{self.port}{path}{tail}"

    def known_hosts_line(self, key: asyncssh.SSHKey | None = None) -> str:
        """The known_hosts entry of this server (of ``key`` instead, to fake a wrong one)."""
        algorithm, encoded = (
            (key or self.host_key).export_public_key("openssh").decode().split()[:2]
        )
        return f"[{self.host}]:{self.port} {algorithm} {encoded}\n"


class _PasswordServer(asyncssh.SSHServer):
    def __init__(self, user: str, password: str) -> None:
        self.user, self.password = user, password

    def begin_auth(self, username: str) -> bool:
        return True  # every user must authenticate

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        return username == self.user and password == self.password


class CuttingSFTPServer(asyncssh.SFTPServer):
    """asyncssh's SFTP server, able to drop the whole SSH connection at the first read that
    reaches past ``cut_after`` bytes of a file, or to leave every read past ``hang_after``
    bytes unanswered, as a server that hung does (set on the class; cut_after is one-shot)."""

    cut_after: int | None = None
    hang_after: int | None = None

    def read(self, file_obj: object, offset: int, size: int) -> Any:
        limit = CuttingSFTPServer.cut_after
        if limit is not None and offset + size > limit:
            CuttingSFTPServer.cut_after = None
            self.connection.abort()  # the TCP connection closes without an SFTP answer
            raise asyncssh.SFTPConnectionLost("cut by the test")
        hang = CuttingSFTPServer.hang_after
        if hang is not None and offset + size > hang:
            return asyncio.Event().wait()  # never answered (cancelled when the server stops)
        return super().read(file_obj, offset, size)


@contextmanager
def sftp_server(root: Path, user: str, password: str) -> Iterator[SftpServer]:
    """An SSH server with only the SFTP subsystem, chrooted to ``root``, password auth, its own
    event loop in a thread (CuttingSFTPServer.cut_after drops a download midway)."""
    logging.getLogger("asyncssh").setLevel(logging.WARNING)
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="test-sftp", daemon=True)
    thread.start()

    async def start() -> Any:
        return await asyncssh.create_server(
            lambda: _PasswordServer(user, password),
            HOST,
            0,
            server_host_keys=[host_key],
            sftp_factory=lambda channel: CuttingSFTPServer(channel, chroot=str(root).encode()),
            allow_scp=False,
        )

    try:
        # the listening socket exists when start() has returned
        server = asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=30)
        port = server.sockets[0].getsockname()[1]

        async def stop() -> None:
            server.close()
            await server.wait_closed()
            # connections a test left open: end their tasks before the loop goes
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in others:
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)

        try:
            yield SftpServer(HOST, port, user, password, host_key)
        finally:
            asyncio.run_coroutine_threadsafe(stop(), loop).result(timeout=30)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@contextmanager
def silent_server() -> Iterator[int]:
    """A port that accepts TCP connections (the kernel completes the handshake) but never says
    a word: what a hung server looks like to a client waiting for its greeting."""
    with socket.socket() as listener:
        listener.bind((HOST, 0))
        listener.listen(8)
        yield listener.getsockname()[1]
