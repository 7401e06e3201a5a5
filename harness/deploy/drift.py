"""Drift check: do the deployed routines and triggers match the current definition files?

Each current file is executed inside a transaction that is always rolled back; the catalog is
read before and after. A routine or trigger whose definition or privileges the files change has
drifted; one the files create is missing; one no file re-creates (its catalog row is untouched)
is unexpected, such as an object whose file was deleted or an overload left behind by a
signature change. Nothing is written: the transaction is rolled back whatever happens.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from harness.deploy.paths import SqlLayout

# Catalog rows of our routines and of the triggers that call them. ``version`` (xmin, ctid)
# changes whenever a statement rewrites the row, even with identical content.
SNAPSHOT_SQL = """
SELECT p.oid::regprocedure::text,
       pg_get_functiondef(p.oid) || E'\\n-- privileges: ' || coalesce(p.proacl::text, 'default'),
       p.xmin::text || p.ctid::text
  FROM pg_proc AS p
  JOIN pg_namespace AS n ON n.oid = p.pronamespace
 WHERE n.nspname = ANY(%(schemas)s) AND p.prokind IN ('f', 'p')
UNION ALL
SELECT format('trigger %%s on %%s', t.tgname, t.tgrelid::regclass),
       pg_get_triggerdef(t.oid),
       t.xmin::text || t.ctid::text
  FROM pg_trigger AS t
  JOIN pg_proc AS p ON p.oid = t.tgfoid
  JOIN pg_namespace AS n ON n.oid = p.pronamespace
 WHERE n.nspname = ANY(%(schemas)s) AND NOT t.tgisinternal
"""


@dataclass(frozen=True)
class CatalogObject:
    definition: str
    version: str


@dataclass
class DriftReport:
    changed: dict[str, str] = field(default_factory=dict)  # identity -> unified diff
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    broken: dict[str, str] = field(default_factory=dict)  # file -> error

    @property
    def clean(self) -> bool:
        return not (self.changed or self.missing or self.unexpected or self.broken)

    def lines(self) -> list[str]:
        """Human-readable findings, one object a line (diffs indented below)."""
        out = [
            f"changed: {name}" + "".join(f"\n    {d}" for d in diff.splitlines())
            for name, diff in sorted(self.changed.items())
        ]
        out += [f"missing: {name} (defined by a file, not deployed)" for name in self.missing]
        out += [f"unexpected: {name} (deployed, no file defines it)" for name in self.unexpected]
        out += [f"broken: {name}: {error}" for name, error in sorted(self.broken.items())]
        return out


def check(database_url: str, layout: SqlLayout) -> DriftReport:
    files = layout.definition_files()
    schemas = sorted({path.name.split(".", 1)[0] for path in files})
    with psycopg.connect(database_url) as connection:
        try:
            connection.execute("SET LOCAL lock_timeout = '5s'")
            deployed = _snapshot(connection, schemas)
            broken = _execute_files(connection, files)
            expected = _snapshot(connection, schemas)
        finally:
            connection.rollback()
    return _compare(deployed, expected, broken)


def _snapshot(connection: psycopg.Connection, schemas: list[str]) -> dict[str, CatalogObject]:
    rows = connection.execute(SNAPSHOT_SQL, {"schemas": schemas}).fetchall()
    return {identity: CatalogObject(definition, version) for identity, definition, version in rows}


def _execute_files(connection: psycopg.Connection, files: list[Path]) -> dict[str, str]:
    broken = {}
    for path in files:
        try:
            with connection.transaction():
                connection.execute(path.read_text().encode())
        except psycopg.Error as error:
            broken[path.name] = str(error).strip().splitlines()[0]
    return broken


def _compare(
    deployed: dict[str, CatalogObject],
    expected: dict[str, CatalogObject],
    broken: dict[str, str],
) -> DriftReport:
    report = DriftReport(broken=broken)
    for identity, after in sorted(expected.items()):
        before = deployed.get(identity)
        if before is None:
            report.missing.append(identity)
        elif before.version == after.version:
            report.unexpected.append(identity)
        elif before.definition != after.definition:
            report.changed[identity] = _diff(before.definition, after.definition)
    return report


def _diff(deployed: str, current: str) -> str:
    lines = difflib.unified_diff(
        deployed.splitlines(), current.splitlines(), "deployed", "file", lineterm="", n=1
    )
    return "\n".join(lines)
