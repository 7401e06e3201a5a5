"""`harness cutover verify` (seed 001: "test queries ... all data copied, key indicators match"):
each source table of a DI process compared with its STG table, and each key indicator's source
and target queries compared.

A table is compared without moving it: each side reads its rows once and sums, per segment of
the key space (SEGMENTS buckets of a hash of the key), the row count and a 64-bit hash of every
row (the columns the DI process copies, as text); only the segments whose sums differ are read
again, key by key, to name the keys that are missing in the target, extra in it, or changed.
Rows the source changed after the last succeeded run (its CDC column at or past that run's
window end, the watermark) are left out on both sides: the next run will bring them. Rows
soft-deleted (the source's deleted column, STG's deleted_at) count as absent.

Both sides read in READ ONLY, REPEATABLE READ transactions with the same text settings (UTC,
ISO dates, shortest exact floats), so equal values hash equally whatever the servers' settings."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from harness import connections
from harness.config import ConfigurationError, first_line, scrub
from harness.di.extract import qualified
from harness.di.load import Target, resolve_target
from harness.di.metadata import DiProcess
from harness.di.sources import connect_reader, connect_source

SEGMENTS = 1024
DRILLED_SEGMENTS = 64  # segments read key by key at most; beyond, the differences are counted
KEYS_SHOWN = 100  # keys listed per kind of difference
WATERMARK_SQL = """
SELECT max(window_to) FROM etl.process WHERE pipeline = %s AND status = 'succeeded'
"""
INDICATORS_SQL = """
SELECT name, source, source_query, target_query FROM etl.cutover_indicator ORDER BY name
"""


@dataclass
class TableCheck:
    process: str
    source: str
    target: str
    watermark: datetime | None
    source_rows: int = 0
    target_rows: int = 0
    left_out: int = 0  # keys changed in the source after the watermark
    differing_segments: int = 0
    missing: list[dict[str, Any]] = field(default_factory=list)  # in the source, not the target
    extra: list[dict[str, Any]] = field(default_factory=list)  # in the target, not the source
    changed: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)  # missing/extra/changed, all found
    complete: bool = True  # every differing segment was read key by key
    error: str | None = None
    seconds: float = 0.0

    @property
    def matched(self) -> bool:
        return self.error is None and self.differing_segments == 0


@dataclass
class IndicatorCheck:
    name: str
    source_rows: list[list[str]]
    target_rows: list[list[str]]
    error: str | None = None

    @property
    def matched(self) -> bool:
        return self.error is None and self.source_rows == self.target_rows


@dataclass
class CutoverReport:
    tables: list[TableCheck]
    indicators: list[IndicatorCheck]
    check_id: int | None = None

    @property
    def passed(self) -> bool:
        return all(t.matched for t in self.tables) and all(i.matched for i in self.indicators)

    def as_json(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "check_id": self.check_id,
            "tables": [asdict(t) | {"matched": t.matched} for t in self.tables],
            "indicators": [asdict(i) | {"matched": i.matched} for i in self.indicators],
        }


@dataclass(frozen=True)
class Side:
    """How one side's rows are read: the relation (or query), the live-row filter, the key."""

    relation: sql.Composable
    live: sql.Composable
    keys: list[str]
    columns: list[str]
    # column -> the type its value is read as, so that both sides render equal values alike
    casts: dict[str, str] = field(default_factory=dict)

    def key_text(self) -> sql.Composable:
        return sql.SQL("ROW({})::text").format(self._values(self.keys))

    def row_hash(self) -> sql.Composable:
        return sql.SQL("hashtextextended(ROW({})::text, 1)").format(self._values(self.columns))

    def _values(self, columns: list[str]) -> sql.Composable:
        return sql.SQL(", ").join(
            sql.SQL("r.{}::{}").format(sql.Identifier(c), sql.SQL(self.casts[c]))
            if c in self.casts
            else sql.SQL("r.{}").format(sql.Identifier(c))
            for c in columns
        )

    def segment(self) -> sql.Composable:
        return sql.SQL("(hashtextextended({}, 0) & {})").format(
            self.key_text(), sql.Literal(SEGMENTS - 1)
        )


def verify_table(
    source: psycopg.Connection,
    target: psycopg.Connection,
    process: DiProcess,
    stg: Target,
    watermark: datetime | None,
) -> TableCheck:
    started = time.monotonic()
    check = TableCheck(process.name, _source_name(process), stg.table, watermark)
    source_side, target_side = _sides(process, stg)
    # each side in one snapshot: what is left out, summed and read key by key agree
    with source.transaction(), target.transaction():
        _compare(check, source, target, process, source_side, target_side, watermark)
    check.seconds = time.monotonic() - started
    return check


def _compare(
    check: TableCheck,
    source: psycopg.Connection,
    target: psycopg.Connection,
    process: DiProcess,
    source_side: Side,
    target_side: Side,
    watermark: datetime | None,
) -> None:
    left_out = _changed_after(source, process, source_side, watermark)
    check.left_out = len(left_out)
    with ThreadPoolExecutor(2) as pool:
        sums = pool.map(
            lambda s: _segment_sums(*s, left_out), ((source, source_side), (target, target_side))
        )
        source_sums, target_sums = list(sums)
    check.source_rows = sum(count for count, _ in source_sums.values())
    check.target_rows = sum(count for count, _ in target_sums.values())
    differing = sorted(
        s
        for s in source_sums.keys() | target_sums.keys()
        if source_sums.get(s) != target_sums.get(s)
    )
    check.differing_segments = len(differing)
    if differing:
        _locate(check, source, target, source_side, target_side, differing, left_out)


def verify_indicator(
    name: str,
    source: psycopg.Connection,
    target: psycopg.Connection,
    source_query: str,
    target_query: str,
) -> IndicatorCheck:
    return IndicatorCheck(
        name, _indicator_rows(source, source_query), _indicator_rows(target, target_query)
    )


def verify_cutover(target_url: str, processes: list[DiProcess]) -> CutoverReport:
    """Every process's table and every key indicator; the report is recorded in
    etl.cutover_check. A table or indicator that cannot be read is a failed check with its
    reason, and the others are still compared."""
    with connect_reader(target_url) as target:
        tables = [_verify_process(target, process) for process in processes]
        with target.transaction():
            indicators = target.execute(INDICATORS_SQL).fetchall()
        checks = [_verify_indicator(target, *indicator) for indicator in indicators]
    report = CutoverReport(tables, checks)
    with connections.connect(target_url, autocommit=True) as recorder:
        report.check_id = recorder.execute(
            "SELECT etl.record_cutover_check(%s, %s)",
            [report.passed, Jsonb(report.as_json(), dumps=_dumps)],
        ).fetchone()[0]
    return report


def _verify_process(target: psycopg.Connection, process: DiProcess) -> TableCheck:
    started = time.monotonic()
    try:
        with target.transaction():
            stg = resolve_target(target, process)
            watermark = target.execute(WATERMARK_SQL, [process.name]).fetchone()[0]
        with connect_source(process.source or "") as source:
            return verify_table(source, target, process, stg, watermark)
    except (psycopg.Error, ConfigurationError, LookupError) as error:
        check = TableCheck(process.name, _source_name(process), process.target_table, None)
        check.error = scrub(first_line(error))
        check.seconds = time.monotonic() - started
        return check


def _verify_indicator(
    target: psycopg.Connection, name: str, source_name: str, source_query: str, target_query: str
) -> IndicatorCheck:
    try:
        with connect_source(source_name) as source:
            return verify_indicator(name, source, target, source_query, target_query)
    except (psycopg.Error, ConfigurationError) as error:
        return IndicatorCheck(name, [], [], scrub(first_line(error)))


def _dumps(document: object) -> str:
    return json.dumps(document, default=str)


# -- reading --------------------------------------------------------------------------------


def _sides(process: DiProcess, stg: Target) -> tuple[Side, Side]:
    columns = stg.column_names
    if process.source_query:
        relation: sql.Composable = sql.SQL("({})").format(sql.SQL(process.source_query))
    else:
        relation = qualified(process.source_table or "")
    live = (
        sql.SQL("r.{} IS NULL").format(sql.Identifier(process.deleted_column))
        if process.deleted_column
        else sql.SQL("true")
    )
    # the source's values as the STG's types (json as jsonb, numeric at the STG's scale, a naive
    # timestamp as the STG's timestamptz, read in UTC); character types compared as text, so a
    # char(n)'s padding and a varchar(n)'s length decide nothing
    as_text = {name for name, kind in stg.columns if kind.startswith("character")}
    source_casts = {name: "text" if name in as_text else kind for name, kind in stg.columns}
    source = Side(relation, live, stg.keys, columns, source_casts)
    target = Side(
        stg.name, sql.SQL("r.deleted_at IS NULL"), stg.keys, columns, dict.fromkeys(as_text, "text")
    )
    return source, target


def _changed_after(
    source: psycopg.Connection, process: DiProcess, side: Side, watermark: datetime | None
) -> list[str]:
    """Keys the source changed at or after the watermark: not yet the target's to have."""
    if not process.cdc_column or watermark is None:
        return []
    query = sql.SQL("SELECT {} FROM {} AS r WHERE r.{} >= {}").format(
        side.key_text(), side.relation, sql.Identifier(process.cdc_column), sql.Literal(watermark)
    )
    with source.transaction():
        return [row[0] for row in source.execute(query)]


def _segment_sums(
    connection: psycopg.Connection, side: Side, left_out: list[str]
) -> dict[int, tuple[int, Decimal]]:
    query = sql.SQL(
        "SELECT {segment}, count(*), sum({hash}) FROM {rel} AS r WHERE {live}"
        " AND NOT ({key} = ANY ({left_out})) GROUP BY 1"
    ).format(
        segment=side.segment(),
        hash=side.row_hash(),
        rel=side.relation,
        live=side.live,
        key=side.key_text(),
        left_out=sql.Placeholder("left_out"),
    )
    with connection.transaction():
        rows = connection.execute(query, {"left_out": left_out})
        return {segment: (count, total) for segment, count, total in rows}


def _locate(
    check: TableCheck,
    source: psycopg.Connection,
    target: psycopg.Connection,
    source_side: Side,
    target_side: Side,
    differing: list[int],
    left_out: list[str],
) -> None:
    """Read the differing segments key by key on both sides and name the keys."""
    drilled = differing[:DRILLED_SEGMENTS]
    check.complete = len(drilled) == len(differing)
    with ThreadPoolExecutor(2) as pool:
        found = pool.map(
            lambda s: _segment_rows(*s, drilled, left_out),
            ((source, source_side), (target, target_side)),
        )
        source_rows, target_rows = list(found)
    kinds: dict[str, list[dict[str, Any]]] = {"missing": [], "extra": [], "changed": []}
    for key in sorted(source_rows.keys() | target_rows.keys()):
        in_source, in_target = source_rows.get(key), target_rows.get(key)
        if in_target is None:
            kinds["missing"].append(in_source[0])
        elif in_source is None:
            kinds["extra"].append(in_target[0])
        elif in_source[1] != in_target[1]:
            kinds["changed"].append(in_source[0])
    check.counts = {kind: len(keys) for kind, keys in kinds.items()}
    check.missing, check.extra, check.changed = (kinds[k][:KEYS_SHOWN] for k in kinds)


def _segment_rows(
    connection: psycopg.Connection, side: Side, segments: list[int], left_out: list[str]
) -> dict[str, tuple[dict[str, Any], int]]:
    key_object = sql.SQL("jsonb_build_object({})").format(
        sql.SQL(", ").join(
            sql.SQL("{}, r.{}").format(sql.Literal(k), sql.Identifier(k)) for k in side.keys
        )
    )
    query = sql.SQL(
        "SELECT {key}, {key_object}, {hash} FROM {rel} AS r WHERE {live}"
        " AND {segment} = ANY ({segments}) AND NOT ({key} = ANY ({left_out}))"
    ).format(
        key=side.key_text(),
        key_object=key_object,
        hash=side.row_hash(),
        rel=side.relation,
        live=side.live,
        segment=side.segment(),
        segments=sql.Literal(segments),
        left_out=sql.Placeholder("left_out"),
    )
    with connection.transaction():
        rows = connection.execute(query, {"left_out": left_out})
        return {text: (key, row_hash) for text, key, row_hash in rows}


def _indicator_rows(connection: psycopg.Connection, query: str) -> list[list[str]]:
    """The rows of an indicator query, each value as text, sorted: two sides that return the
    same rows in another order still match."""
    with connection.transaction():
        rows = connection.execute(
            sql.SQL("SELECT * FROM ({}) AS indicator").format(sql.SQL(query))
        ).fetchall()
    return sorted([_text(value) for value in row] for row in rows)


NULL_TEXT = "<NULL>"  # an indicator's NULL, never equal to an empty string


def _text(value: object) -> str:
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    return NULL_TEXT if value is None else str(value)


def _source_name(process: DiProcess) -> str:
    return f"{process.source}:{process.source_table or '(query)'}"
