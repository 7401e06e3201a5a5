"""Hosts on a network the test makes: a bridge in this namespace (the database host: the
PostgreSQL server and S3 are reached through relays on the bridge's address) and one network
namespace per worker host, each on a veth link to the bridge. Cutting a host's link drops its
packets both ways, as a pulled cable or a partition does; restoring it lets its TCP
connections go on where they stood."""

from __future__ import annotations

import secrets
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@dataclass
class Network:
    tag: str
    subnet: int
    hosts: list[str] = field(default_factory=list)  # namespace names

    @property
    def gateway(self) -> str:
        return f"10.231.{self.subnet}.1"

    def link(self, host: int) -> str:
        return f"pg{self.tag}{host}h"

    def cut(self, host: int) -> None:
        ip("link", "set", self.link(host), "down")

    def restore(self, host: int) -> None:
        ip("link", "set", self.link(host), "up")

    def command(self, host: int, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", self.hosts[host], *argv]


@contextmanager
def network(workers: int) -> Iterator[Network]:
    """A bridge and ``workers`` namespaces linked to it; everything removed afterwards."""
    net = Network(secrets.token_hex(2), secrets.randbelow(250) + 1)
    bridge = f"pg{net.tag}br"
    made: list[tuple[str, ...]] = []
    try:
        ip("link", "add", bridge, "type", "bridge")
        made.append(("link", "del", bridge))
        ip("addr", "add", f"{net.gateway}/24", "dev", bridge)
        ip("link", "set", bridge, "up")
        for host in range(workers):
            namespace, inside = f"pg{net.tag}n{host}", f"pg{net.tag}{host}w"
            ip("netns", "add", namespace)
            made.append(("netns", "del", namespace))
            ip("link", "add", net.link(host), "type", "veth", "peer", "name", inside)
            made.append(("link", "del", net.link(host)))
            ip("link", "set", inside, "netns", namespace)
            ip("link", "set", net.link(host), "master", bridge, "up")
            ip("-n", namespace, "addr", "add", f"10.231.{net.subnet}.{11 + host}/24", "dev", inside)
            ip("-n", namespace, "link", "set", inside, "up")
            ip("-n", namespace, "link", "set", "lo", "up")
            net.hosts.append(namespace)
        yield net
    finally:
        for undo in reversed(made):
            subprocess.run(["ip", *undo], capture_output=True)


def _connect(target: tuple[str, int] | str) -> socket.socket:
    if isinstance(target, str):  # a Unix socket (the embedded PostgreSQL listens on one)
        unix = socket.socket(socket.AF_UNIX)
        unix.connect(target)
        return unix
    return socket.create_connection(target)


def database_address(conninfo: dict[str, str]) -> tuple[str, int] | str:
    """Where a libpq URL's server listens: (host, port), or the path of its Unix socket."""
    host, port = conninfo.get("host") or "127.0.0.1", int(conninfo.get("port") or 5432)
    return f"{host}/.s.PGSQL.{port}" if host.startswith("/") else (host, port)


@contextmanager
def relay(bind: str, target: tuple[str, int] | str) -> Iterator[int]:
    """A TCP relay on ``bind`` (a port of its choosing) to ``target``: how the hosts reach a
    server that listens on 127.0.0.1 (or a Unix socket) only. Yields the port."""
    listener = socket.create_server((bind, 0))
    stop = threading.Event()
    with ExitStack() as cleanup:
        cleanup.callback(stop.set)
        cleanup.callback(listener.close)

        def accept() -> None:
            while not stop.is_set():
                try:
                    client, _ = listener.accept()
                except OSError:
                    return
                try:
                    server = _connect(target)
                except OSError:
                    client.close()
                    continue
                for source, sink in ((client, server), (server, client)):
                    threading.Thread(target=_pump, args=(source, sink), daemon=True).start()

        threading.Thread(target=accept, daemon=True, name="test-relay").start()
        yield listener.getsockname()[1]


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for end in (source, sink):
            with suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
