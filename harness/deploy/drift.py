"""Drift check: do the deployed routines and triggers match the current definition files, and do
they still hold the owners, security settings and privileges the migrations gave them?

Each current file is executed inside a transaction that is always rolled back; the catalog is
read before and after. A routine or trigger whose definition the files change has drifted; one
the files create is missing; one no file re-creates (its catalog row is untouched) is unexpected,
such as an object whose file was deleted or an overload left behind by a signature change.

Before the files run, every routine's EXECUTE grants are reset to what CREATE gives (its owner and
PUBLIC), so the privileges read back afterwards are exactly what the files make of them, as the
migrations deploy them: a grant made by hand (to PUBLIC, to the loader) or a revoked one shows as
a security finding, as does a routine turned SECURITY INVOKER or DEFINER, made LEAKPROOF, or
given other settings (search_path) than its file.

The rest is read from the deployed catalog: SECURITY DEFINER routines belong to pgferry_owner,
every other routine and every table, view and sequence to the owner of its schema (who ran the
migrations); a trigger of ours that is not enabled is reported, and so is an owner role that could
log in. Nothing is written: the transaction is rolled back whatever happens.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

from harness import connections
from harness.deploy.paths import SqlLayout
from harness.deploy.versions import OWNER_ROLE

# Catalog rows of our routines. ``version`` (xmin, ctid) changes whenever a statement rewrites
# the row, even with identical content. ``grants``: who may do what, owner included (a NULL ACL
# is the default: owner and PUBLIC may execute).
ROUTINES_SQL = """
SELECT p.oid::regprocedure::text,
       pg_get_functiondef(p.oid),
       p.xmin::text || p.ctid::text,
       p.prosecdef,
       p.proleakproof,
       coalesce(p.proconfig, '{}'),
       ARRAY(SELECT g.entry
               FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) AS a,
                    LATERAL (SELECT CASE a.grantee WHEN 0 THEN 'PUBLIC'
                                    ELSE pg_get_userbyid(a.grantee) END
                                    || ' ' || a.privilege_type) AS e (privilege),
                    LATERAL (VALUES (e.privilege),
                                    (CASE WHEN a.is_grantable
                                          THEN e.privilege || ' WITH GRANT OPTION' END))
                    AS g (entry)
              WHERE g.entry IS NOT NULL
              ORDER BY 1),
       pg_get_userbyid(p.proowner),
       CASE WHEN p.prosecdef THEN %(owner_role)s ELSE pg_get_userbyid(n.nspowner) END
  FROM pg_proc AS p
  JOIN pg_namespace AS n ON n.oid = p.pronamespace
 WHERE n.nspname = ANY(%(schemas)s) AND p.prokind IN ('f', 'p')
"""

# The triggers that call our routines.
TRIGGERS_SQL = """
SELECT format('trigger %%s on %%s', t.tgname, t.tgrelid::regclass),
       pg_get_triggerdef(t.oid),
       t.xmin::text || t.ctid::text,
       t.tgenabled
  FROM pg_trigger AS t
  JOIN pg_proc AS p ON p.oid = t.tgfoid
  JOIN pg_namespace AS n ON n.oid = p.pronamespace
 WHERE n.nspname = ANY(%(schemas)s) AND NOT t.tgisinternal
"""

# Tables, views and sequences of ours whose owner is not the schema's owner (an identity or
# serial column's sequence always has its table's owner: the table is reported).
RELATION_OWNERS_SQL = """
SELECT format('%%s %%s', CASE c.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view'
                                        WHEN 'S' THEN 'sequence' ELSE 'table' END,
              c.oid::regclass),
       pg_get_userbyid(c.relowner),
       pg_get_userbyid(n.nspowner)
  FROM pg_class AS c
  JOIN pg_namespace AS n ON n.oid = c.relnamespace
 WHERE n.nspname = ANY(%(schemas)s) AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
   AND c.relowner <> n.nspowner
   AND NOT EXISTS (SELECT FROM pg_depend AS d
                    WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                      AND d.deptype IN ('a', 'i'))
 ORDER BY 1
"""

OWNER_ROLE_SQL = """
SELECT rolcanlogin, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = %(owner_role)s
"""

TRIGGER_STATES = {
    "D": "disabled",
    "R": "fires only when session_replication_role is replica",
    "A": "fires always, replicas included",
}


@dataclass(frozen=True)
class CatalogObject:
    definition: str
    version: str
    security_definer: bool = False
    leakproof: bool = False
    settings: tuple[str, ...] = ()
    grants: tuple[str, ...] = ()
    owner: str = ""
    expected_owner: str = ""
    enabled: str = "O"


@dataclass
class DriftReport:
    changed: dict[str, str] = field(default_factory=dict)  # identity -> unified diff
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    broken: dict[str, str] = field(default_factory=dict)  # file -> error
    security: dict[str, list[str]] = field(default_factory=dict)  # identity -> what differs
    owners: dict[str, str] = field(default_factory=dict)  # object -> owned by whom, expected
    disabled: dict[str, str] = field(default_factory=dict)  # trigger -> its state

    @property
    def clean(self) -> bool:
        return not (
            self.changed
            or self.missing
            or self.unexpected
            or self.broken
            or self.security
            or self.owners
            or self.disabled
        )

    def lines(self) -> list[str]:
        """Human-readable findings, one object a line (diffs indented below)."""
        out = [
            f"changed: {name}" + "".join(f"\n    {d}" for d in diff.splitlines())
            for name, diff in sorted(self.changed.items())
        ]
        out += [
            f"security: {name}: {finding}"
            for name, findings in sorted(self.security.items())
            for finding in findings
        ]
        out += [f"owner: {name} {finding}" for name, finding in sorted(self.owners.items())]
        out += [f"disabled: {name} ({state})" for name, state in sorted(self.disabled.items())]
        out += [f"missing: {name} (defined by a file, not deployed)" for name in self.missing]
        out += [f"unexpected: {name} (deployed, no file defines it)" for name in self.unexpected]
        out += [f"broken: {name}: {error}" for name, error in sorted(self.broken.items())]
        return out


def check(database_url: str, layout: SqlLayout) -> DriftReport:
    files = layout.definition_files()
    schemas = sorted({path.name.split(".", 1)[0] for path in files})
    with connections.connect(database_url) as connection:
        try:
            connection.execute("SET LOCAL lock_timeout = '5s'")
            deployed = _snapshot(connection, schemas)
            relation_owners = _relation_owners(connection, schemas)
            owner_role = _owner_role_findings(connection)
            _clear_grants(connection, deployed)
            cleared = _snapshot(connection, schemas)
            broken = _execute_files(connection, files)
            expected = _snapshot(connection, schemas)
        finally:
            connection.rollback()
    report = _compare(deployed, cleared, expected, broken)
    report.owners.update(relation_owners)
    if owner_role:
        report.security[f"role {OWNER_ROLE}"] = owner_role
    return report


def _snapshot(connection: psycopg.Connection, schemas: list[str]) -> dict[str, CatalogObject]:
    params = {"schemas": schemas, "owner_role": OWNER_ROLE}
    objects = {
        row[0]: CatalogObject(
            definition=row[1],
            version=row[2],
            security_definer=row[3],
            leakproof=row[4],
            settings=tuple(row[5]),
            grants=tuple(row[6]),
            owner=row[7],
            expected_owner=row[8],
        )
        for row in connection.execute(ROUTINES_SQL, params)
    }
    for identity, definition, version, enabled in connection.execute(TRIGGERS_SQL, params):
        objects[identity] = CatalogObject(definition, version, enabled=enabled)
    return objects


def _relation_owners(connection: psycopg.Connection, schemas: list[str]) -> dict[str, str]:
    rows = connection.execute(RELATION_OWNERS_SQL, {"schemas": schemas})
    return {
        name: f"is owned by {owner}, expected {expected} (the owner of its schema)"
        for name, owner, expected in rows
    }


def _owner_role_findings(connection: psycopg.Connection) -> list[str]:
    row = connection.execute(OWNER_ROLE_SQL, {"owner_role": OWNER_ROLE}).fetchone()
    if row is None:
        return ["does not exist (SECURITY DEFINER routines run as it)"]
    names = ("LOGIN", "SUPERUSER", "BYPASSRLS")
    attributes = [name for name, held in zip(names, row, strict=True) if held]
    if not attributes:
        return []
    return [
        f"has {', '.join(attributes)}: SECURITY DEFINER routines run as it "
        f"(ALTER ROLE {OWNER_ROLE} NOLOGIN NOSUPERUSER NOBYPASSRLS)"
    ]


def _clear_grants(connection: psycopg.Connection, deployed: dict[str, CatalogObject]) -> None:
    """Give every routine the privileges CREATE gives a new one (its owner and PUBLIC may
    execute it), since CREATE OR REPLACE keeps those of an existing one: the files' REVOKEs and
    GRANTs then make exactly the privileges the migrations made."""
    for identity, routine in deployed.items():
        if identity.startswith("trigger "):
            continue
        grantees = sorted({grant.split(" ", 1)[0] for grant in routine.grants} - {routine.owner})
        targets = sql.SQL(", ").join(
            sql.SQL("PUBLIC") if name == "PUBLIC" else sql.Identifier(name) for name in grantees
        )
        if grantees:
            connection.execute(
                sql.SQL("REVOKE ALL ON ROUTINE {} FROM {} CASCADE").format(
                    sql.SQL(identity), targets
                )
            )
        connection.execute(
            sql.SQL("GRANT ALL ON ROUTINE {} TO {}, PUBLIC").format(
                sql.SQL(identity), sql.Identifier(routine.owner)
            )
        )


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
    cleared: dict[str, CatalogObject],
    expected: dict[str, CatalogObject],
    broken: dict[str, str],
) -> DriftReport:
    report = DriftReport(broken=broken)
    for identity, before in sorted(deployed.items()):
        if before.enabled != "O":
            report.disabled[identity] = TRIGGER_STATES.get(before.enabled, before.enabled)
        # the owner its file asks for (a routine made SECURITY INVOKER by hand is a security
        # finding, not also an owner one); a routine no file defines: as deployed
        wanted = expected.get(identity, before)
        if before.owner != wanted.expected_owner:
            why = (
                "SECURITY DEFINER routines run as their owner"
                if wanted.security_definer
                else "the owner of its schema"
            )
            report.owners[identity] = (
                f"is owned by {before.owner}, expected {wanted.expected_owner} ({why})"
            )
    for identity, after in sorted(expected.items()):
        before = deployed.get(identity)
        if before is None:
            report.missing.append(identity)
            continue
        if cleared[identity].version == after.version:
            report.unexpected.append(identity)
            continue
        if _without_security(before.definition) != _without_security(after.definition):
            report.changed[identity] = _diff(before.definition, after.definition)
        if security := _security_findings(before, after):
            report.security[identity] = security
    return report


def _security_findings(deployed: CatalogObject, file: CatalogObject) -> list[str]:
    findings = []
    if deployed.security_definer != file.security_definer:
        findings.append(
            f"SECURITY {_definer(deployed.security_definer)}, "
            f"the file says SECURITY {_definer(file.security_definer)}"
        )
    if deployed.leakproof != file.leakproof:
        findings.append(
            f"{'' if deployed.leakproof else 'not '}LEAKPROOF, "
            f"the file says {'' if file.leakproof else 'not '}LEAKPROOF"
        )
    if deployed.settings != file.settings:
        findings.append(
            f"runs with {_settings(deployed.settings)}, the file sets {_settings(file.settings)}"
        )
    extra = sorted(set(deployed.grants) - set(file.grants))
    lacking = sorted(set(file.grants) - set(deployed.grants))
    if extra:
        findings.append(f"granted beyond the files: {', '.join(extra)}")
    if lacking:
        findings.append(f"lacks what the files grant: {', '.join(lacking)}")
    return findings


def _definer(flag: bool) -> str:
    return "DEFINER" if flag else "INVOKER"


def _settings(settings: tuple[str, ...]) -> str:
    return "; ".join(settings) if settings else "no settings"


def _without_security(definition: str) -> str:
    """The definition without the attributes _security_findings compares (SECURITY DEFINER,
    LEAKPROOF, SET lines of the header), so a security change is not also reported as changed."""
    lines = definition.splitlines()
    body_at = next((i for i, line in enumerate(lines) if line.startswith("AS ")), len(lines))
    header = []
    for line in lines[:body_at]:
        if line.startswith(" SET "):
            continue
        line = line.replace(" SECURITY DEFINER", "").replace(" LEAKPROOF", "")
        if line.strip():
            header.append(line)
    return "\n".join(header + lines[body_at:])


def _diff(deployed: str, current: str) -> str:
    lines = difflib.unified_diff(
        deployed.splitlines(), current.splitlines(), "deployed", "file", lineterm="", n=1
    )
    return "\n".join(lines)
