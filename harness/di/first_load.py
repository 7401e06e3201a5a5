"""A first load: a window COPY'd straight into its STG table while that table is empty, instead
of into a temporary table and then merged (the file importer's first file into an empty target
table too, harness.files.importer). Into an empty table the merge has nothing to
compare, update or mark deleted: every row is an insert, so the temporary table, its index and
the INSERT ... SELECT are work the result does not need (a million-row first load is about
half of its time).

COPY cannot compute the stamps a merge writes, so for the COPY the STG table's inserted_at and
updated_at default to the run's one stamp (as etl.merge_table stamps every row of a call with
one), and their own defaults are put back afterwards; the ALTER TABLE also locks the table, so
no other session writes to it before the run commits. It is all in the run's transaction,
inside a savepoint: a row the STG refuses (a type, a constraint, a duplicate key) undoes the
attempt, defaults included, and the rows go the merge's way, where each bad row is logged.

Taken only when the result cannot differ from a merge's: the table is empty under the lock, the
process's key is an immediate unique index of it (a duplicate key is then refused here as the
merge refuses it), the source carries no soft-delete column (the merge path does not insert
rows the source deleted), and the table is a plain one: not partitioned, no children, no user
triggers, no deferrable constraints.

The ALTER TABLE takes an ACCESS EXCLUSIVE lock until the run commits: even readers of the STG
table wait for the first load, its upload included. A lock conflict (another session's lock
upgrade: a deadlock) is one more refusal: the rows go the merge's way."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql

STAMPS = ("inserted_at", "updated_at")

# is there a unique index (immediate, valid, not partial, no expressions) whose key columns are
# exactly these?
KEY_IS_UNIQUE_SQL = """
SELECT EXISTS (
    SELECT FROM pg_catalog.pg_index AS i
     WHERE i.indrelid = %(table)s AND i.indisunique AND i.indimmediate AND i.indisvalid
       AND i.indisready AND i.indpred IS NULL AND i.indexprs IS NULL
       AND i.indnkeyatts = cardinality(%(keys)s::text[])
       AND (SELECT array_agg(a.attname::text ORDER BY a.attname)
              FROM pg_catalog.pg_attribute AS a
             WHERE a.attrelid = i.indrelid
               AND a.attnum = ANY ((i.indkey::int2[])[0:i.indnkeyatts - 1]))
           = (SELECT array_agg(k ORDER BY k) FROM unnest(%(keys)s::text[]) AS k))
"""
# what a COPY and a merge would treat differently, or an ALTER TABLE would reach beyond the
# table: a partitioned table or one with children (the ALTER changes theirs too), user triggers
# (one that skips a row would make the counts wrong), deferred constraints (their pending
# checks forbid the ALTER that puts the defaults back)
PLAIN_TABLE_SQL = """
SELECT c.relkind = 'r'
   AND NOT EXISTS (SELECT FROM pg_catalog.pg_inherits WHERE inhparent = c.oid)
   AND NOT EXISTS (SELECT FROM pg_catalog.pg_trigger WHERE tgrelid = c.oid AND NOT tgisinternal)
   AND NOT EXISTS (SELECT FROM pg_catalog.pg_constraint WHERE conrelid = c.oid AND condeferrable)
  FROM pg_catalog.pg_class AS c
 WHERE c.oid = %s
"""
# the stamps' own defaults, NULL where none
DEFAULTS_SQL = """
SELECT a.attname, pg_catalog.pg_get_expr(d.adbin, d.adrelid)
  FROM pg_catalog.pg_attribute AS a
  LEFT JOIN pg_catalog.pg_attrdef AS d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE a.attrelid = %s AND a.attname = ANY (%s) AND a.attnum > 0 AND NOT a.attisdropped
"""


class NotEmpty(Exception):
    """The STG table got rows between the check and the lock."""


def may_load_straight(
    connection: psycopg.Connection,
    table: sql.Composable,
    oid: int,
    keys: list[str],
    soft_deletes: bool = False,
) -> bool:
    """Whether rows may be COPY'd straight into ``table`` instead of merged: not when the
    source carries soft deletes (``soft_deletes``), see the module's docstring for the rest."""
    if soft_deletes:
        return False
    unique = connection.execute(KEY_IS_UNIQUE_SQL, {"table": oid, "keys": keys}).fetchone()[0]
    plain = connection.execute(PLAIN_TABLE_SQL, [oid]).fetchone()[0]
    return bool(unique and plain) and _is_empty(connection, table)


@contextmanager
def stamped_by_default(
    connection: psycopg.Connection, table: sql.Composable, oid: int
) -> Iterator[None]:
    """While inside, ``table``'s inserted_at and updated_at default to one stamp and it is
    locked and empty (else NotEmpty); its own defaults are put back on the way out. Inside a
    transaction of the caller's, which an exception rolls back, defaults included."""
    defaults = dict(connection.execute(DEFAULTS_SQL, [oid, list(STAMPS)]).fetchall())
    stamp = connection.execute("SELECT clock_timestamp()").fetchone()[0]
    _set_defaults(connection, table, {name: sql.Literal(stamp) for name in STAMPS})
    if not _is_empty(connection, table):  # now under the ALTER's lock
        raise NotEmpty("the STG table is no longer empty")
    yield
    _set_defaults(
        connection,
        table,
        {name: sql.SQL(expr) if expr else None for name, expr in defaults.items()},
    )


def _is_empty(connection: psycopg.Connection, table: sql.Composable) -> bool:
    query = sql.SQL("SELECT NOT EXISTS (SELECT FROM {})").format(table)
    return bool(connection.execute(query).fetchone()[0])


def _set_defaults(
    connection: psycopg.Connection,
    table: sql.Composable,
    defaults: dict[str, sql.Composable | None],
) -> None:
    """One ALTER TABLE: each column's default set to its expression, or dropped for None."""
    actions = [
        sql.SQL("ALTER {} SET DEFAULT {}").format(sql.Identifier(name), expression)
        if expression is not None
        else sql.SQL("ALTER {} DROP DEFAULT").format(sql.Identifier(name))
        for name, expression in defaults.items()
    ]
    connection.execute(sql.SQL("ALTER TABLE {} {}").format(table, sql.SQL(", ").join(actions)))
