"""Where the project's SQL lives on disk."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

HARNESS_DIR = Path(__file__).resolve().parent.parent
# A wheel carries the SQL package here (pyproject: force-include); a checkout has it at its root.
BUNDLED_ROOT = HARNESS_DIR / "sql_package"
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


class LayoutMissing(FileNotFoundError):
    """Neither the installed package nor a checkout holds the SQL package."""


def default_layout() -> SqlLayout:
    """The SQL package this harness was installed with: the copy inside the wheel, or the
    checkout's own files for an editable install (pip install -e .)."""
    for root in (BUNDLED_ROOT, HARNESS_DIR.parent):
        if (root / "alembic.ini").is_file() and (root / "db" / "migrations").is_dir():
            return SqlLayout(root)
    raise LayoutMissing(
        f"the SQL package (alembic.ini, db/) is not installed beside {HARNESS_DIR}; "
        "reinstall pgferry from its wheel or a checkout"
    )
