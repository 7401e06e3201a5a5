"""Where the project's SQL lives on disk."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
DEFINITION_KINDS = ("procedures", "triggers")


@dataclass(frozen=True)
class SqlLayout:
    """The fixed layout below a project root (the folder that holds alembic.ini)."""

    root: Path

    @property
    def alembic_ini(self) -> Path:
        return self.root / "alembic.ini"

    @property
    def migrations(self) -> Path:
        return self.root / "db" / "migrations"

    @property
    def history(self) -> Path:
        """Frozen SQL, one folder per revision: db/migrations/sql/<rev>/."""
        return self.migrations / "sql"

    @property
    def versions(self) -> Path:
        return self.migrations / "versions"

    def definition_files(self) -> list[Path]:
        """The current definition files, procedures first, each kind in name order."""
        return [
            path
            for kind in DEFINITION_KINDS
            for path in sorted((self.root / "db" / kind).glob("*.sql"))
        ]


def default_layout() -> SqlLayout:
    """The layout of the checkout this package was installed from (pip install -e .)."""
    root = PACKAGE_DIR.parent
    if not (root / "alembic.ini").is_file():
        raise FileNotFoundError(
            f"no alembic.ini next to the harness package in {root}; "
            "install pgferry from a checkout with `pip install -e .`"
        )
    return SqlLayout(root)
