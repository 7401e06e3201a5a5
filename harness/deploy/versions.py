"""Deploy frozen copies of SQL objects from Alembic revisions.

Every routine has one current definition file, ``db/procedures/<schema>.<name>.sql`` or
``db/triggers/<schema>.<name>.sql`` (a trigger file holds the trigger function and its
``CREATE OR REPLACE TRIGGER`` statements). A revision never reads those live files: it deploys
the copies frozen into its own folder, ``db/migrations/sql/<rev>/``::

    schema.up.sql / schema.down.sql      hand-written DDL (tables, indexes, dropped signatures)
    procedures/<schema>.<name>.sql        objects this revision (re)defines
    triggers/<schema>.<name>.sql
    dropped.txt                           objects this revision removes, e.g. procedures/etl.x.sql

Upgrade runs schema.up.sql, then the copies, then drops what dropped.txt names. Downgrade puts
every object the revision touched back as the latest earlier revision left it (its copy, or
nothing), then runs schema.down.sql. Revision ids sort in history order (0001, 0002, ...).

Owners: from revision 0009 on, every SECURITY DEFINER routine of ours belongs to the NOLOGIN role
pgferry_owner, whose rights are bounded, not to whoever ran the migration (usually a superuser).
A copy cannot say so itself (CREATE OR REPLACE keeps an existing routine's owner and gives a new
one to the caller), so each upgrade and downgrade that ends at 0009 or later finishes by giving
every SECURITY DEFINER routine to pgferry_owner, and any SECURITY INVOKER routine pgferry_owner
holds back to the schema owner (see owner_sql). Earlier revisions deploy as they always did.
"""

from __future__ import annotations

from pathlib import Path

from alembic import op

from harness.deploy.paths import DEFINITION_KINDS

OWNER_ROLE = "pgferry_owner"
OWNER_ROLE_FROM = "0009"  # the first revision whose routines OWNER_ROLE owns
SCHEMA_UP = "schema.up.sql"
SCHEMA_DOWN = "schema.down.sql"
DROPPED = "dropped.txt"


def upgrade(revision: str, migration_file: str) -> None:
    """Apply ``revision`` (called from the revision's ``upgrade()``)."""
    for statement in upgrade_script(history_dir(migration_file), revision):
        _execute(statement)


def downgrade(revision: str, migration_file: str) -> None:
    """Revert ``revision`` (called from the revision's ``downgrade()``)."""
    for statement in downgrade_script(history_dir(migration_file), revision):
        _execute(statement)


def history_dir(migration_file: str) -> Path:
    """db/migrations/sql, found from a file in db/migrations/versions."""
    return Path(migration_file).resolve().parent.parent / "sql"


def upgrade_script(history: Path, revision: str) -> list[str]:
    folder = history / revision
    script = _read_if_exists(folder / SCHEMA_UP)
    script += [path.read_text() for path in frozen_objects(folder)]
    script += [drop_object_sql(name) for name in dropped_objects(folder)]
    if revision >= OWNER_ROLE_FROM:
        script.append(owner_sql(schemas(history, revision)))
    return script


def downgrade_script(history: Path, revision: str) -> list[str]:
    folder = history / revision
    touched = [_relative(path, folder) for path in frozen_objects(folder)]
    touched += dropped_objects(folder)
    script = []
    for name in touched:
        previous = previous_copy(history, revision, name)
        script.append(previous.read_text() if previous else drop_object_sql(name))
    script += _read_if_exists(folder / SCHEMA_DOWN)
    earlier = [rev for rev in revisions(history) if rev < revision]
    if earlier and earlier[-1] >= OWNER_ROLE_FROM:
        # an object the downgrade re-created belongs to whoever runs it
        script.append(owner_sql(schemas(history, earlier[-1])))
    return script


def revisions(history: Path) -> list[str]:
    """Revision folders in history order."""
    return sorted(path.name for path in history.iterdir() if path.is_dir())


def frozen_objects(folder: Path) -> list[Path]:
    """The object copies of one revision folder, procedures before triggers."""
    return [path for kind in DEFINITION_KINDS for path in sorted((folder / kind).glob("*.sql"))]


def dropped_objects(folder: Path) -> list[str]:
    path = folder / DROPPED
    if not path.is_file():
        return []
    lines = (line.strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def previous_copy(history: Path, revision: str, name: str) -> Path | None:
    """The copy of ``name`` that the latest revision before ``revision`` left, if any."""
    for earlier in reversed([rev for rev in revisions(history) if rev < revision]):
        folder = history / earlier
        if name in dropped_objects(folder):
            return None
        copy = folder / name
        if copy.is_file():
            return copy
    return None


def latest_copy(history: Path, name: str) -> Path | None:
    """The copy of ``name`` that the whole history leaves deployed, if any."""
    after_last = "~"  # sorts after every revision id
    return previous_copy(history, after_last, name)


def schemas(history: Path, revision: str) -> list[str]:
    """The schemas of every routine history deploys up to ``revision``."""
    return sorted(
        {
            _qualified_name(path.name)[0]
            for rev in revisions(history)
            if rev <= revision
            for path in frozen_objects(history / rev)
        }
    )


def owner_sql(schemas: list[str]) -> str:
    """SQL that gives every SECURITY DEFINER routine in ``schemas`` to OWNER_ROLE, and every
    SECURITY INVOKER routine OWNER_ROLE owns back to its schema's owner: a routine others run
    with their own rights must not belong to a role operators may be members of."""
    names = ", ".join(f"'{schema}'" for schema in schemas)
    return f"""DO $owner$
DECLARE
    v_routine record;
BEGIN
    FOR v_routine IN
        SELECT p.oid::regprocedure AS routine,
               CASE WHEN p.prosecdef THEN '{OWNER_ROLE}' ELSE pg_get_userbyid(n.nspowner) END
                   AS owner
          FROM pg_proc AS p
          JOIN pg_namespace AS n ON n.oid = p.pronamespace
         WHERE n.nspname IN ({names}) AND p.prokind IN ('f', 'p')
           AND ((p.prosecdef AND p.proowner <> '{OWNER_ROLE}'::regrole)
                OR (NOT p.prosecdef AND p.proowner = '{OWNER_ROLE}'::regrole))
         ORDER BY 1
    LOOP
        EXECUTE format('ALTER ROUTINE %s OWNER TO %I', v_routine.routine, v_routine.owner);
    END LOOP;
END
$owner$;
"""


def drop_object_sql(name: str) -> str:
    """SQL that drops every routine named by an object file, and the triggers that use it."""
    schema, routine = _qualified_name(name)
    return f"""DO $drop$
DECLARE
    v_trigger record;
    v_routine regprocedure;
BEGIN
    FOR v_trigger IN
        SELECT t.tgname, t.tgrelid::regclass AS table_name
          FROM pg_trigger AS t
          JOIN pg_proc AS p ON p.oid = t.tgfoid
          JOIN pg_namespace AS n ON n.oid = p.pronamespace
         WHERE n.nspname = '{schema}' AND p.proname = '{routine}' AND NOT t.tgisinternal
    LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', v_trigger.tgname, v_trigger.table_name);
    END LOOP;
    FOR v_routine IN
        SELECT p.oid::regprocedure
          FROM pg_proc AS p
          JOIN pg_namespace AS n ON n.oid = p.pronamespace
         WHERE n.nspname = '{schema}' AND p.proname = '{routine}'
    LOOP
        EXECUTE format('DROP ROUTINE %s', v_routine);
    END LOOP;
END
$drop$;
"""


def _qualified_name(name: str) -> tuple[str, str]:
    """``procedures/etl.start_process.sql`` -> (``etl``, ``start_process``)."""
    stem = Path(name).name.removesuffix(".sql")
    schema, _, routine = stem.partition(".")
    if not routine or not (schema + routine).replace("_", "").isalnum():
        raise ValueError(f"object file name must be <schema>.<routine>.sql, got {name!r}")
    return schema, routine


def _relative(path: Path, folder: Path) -> str:
    return path.relative_to(folder).as_posix()


def _read_if_exists(path: Path) -> list[str]:
    return [path.read_text()] if path.is_file() else []


def _execute(sql: str) -> None:
    """Run a script verbatim: online through the driver, offline into the --sql output.

    ``op.execute`` would wrap the text in ``text()``, which treats ``:name`` as a bind
    parameter and mangles PL/pgSQL; a script is never split on ``;`` either.
    """
    context = op.get_context()
    if context.as_sql:
        context.impl.static_output(sql.strip() + "\n")
        return
    driver_connection = op.get_bind().connection.driver_connection
    with driver_connection.cursor() as cursor:
        cursor.execute(sql)
