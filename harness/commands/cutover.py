"""`harness cutover verify`: does the target hold what the sources hold? (seed 001)"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from harness import connections
from harness.commands.common import EXIT_PROBLEM, out, require_database

if TYPE_CHECKING:
    from harness.di.cutover import CutoverReport, TableCheck

cutover_app = typer.Typer(
    help="Cutover: verify that the target holds what the sources hold.", no_args_is_help=True
)


@cutover_app.command("verify")
def verify(
    names: Annotated[
        list[str] | None, typer.Argument(help="DI processes to compare (default: all).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
) -> None:
    """Compare every source table with its STG table, and every key indicator.

    Rows: counts, then a checksum per segment of the key space, and the keys that are missing,
    extra or changed where a segment differs; rows the source changed after the last succeeded
    run are left out. Indicators: the source and target queries of etl.cutover_indicator must
    give the same rows. The result is kept in etl.cutover_check. Exit 0 only when everything
    matches, 1 when something differs.
    """
    from harness.di.cutover import verify_cutover
    from harness.di.metadata import load_processes
    from harness.di.schedule import select

    url = require_database()
    with connections.connect(url, autocommit=True) as connection:
        chosen = [
            p
            for p in select(load_processes(connection), names or [], None)
            if p.kind == "source_to_stg"
        ]
    report = verify_cutover(url, chosen)
    if as_json:
        typer.echo(json.dumps(report.as_json(), indent=2, default=str))
    else:
        for line in report_lines(report):
            out.print(line, markup=False, highlight=False)
    if not report.passed:
        raise typer.Exit(EXIT_PROBLEM)


def report_lines(report: CutoverReport) -> list[str]:
    lines = []
    for table in report.tables:
        lines += _table_lines(table)
    for indicator in report.indicators:
        if indicator.error:
            lines.append(f"indicator {indicator.name}: NOT CHECKED: {indicator.error}")
        elif indicator.matched:
            lines.append(f"indicator {indicator.name}: match ({len(indicator.source_rows)} rows)")
        else:
            lines.append(f"indicator {indicator.name}: DIFFERS")
            lines.append(f"  source: {indicator.source_rows}")
            lines.append(f"  target: {indicator.target_rows}")
    verdict = "PASSED: everything matches" if report.passed else "FAILED: differences above"
    lines.append(f"cutover check {report.check_id}: {verdict}")
    return [escape(line) for line in lines]


def _table_lines(table: TableCheck) -> list[str]:
    head = f"{table.process}: {table.source} -> {table.target}"
    if table.error:
        return [f"{head}: NOT CHECKED: {table.error}"]
    upto = f" up to {table.watermark:%Y-%m-%d %H:%M:%S}" if table.watermark else ""
    counts = f"{table.source_rows} source rows, {table.target_rows} target rows{upto}" + (
        f" ({table.left_out} changed since, left out)" if table.left_out else ""
    )
    if table.matched:
        return [f"{head}: match: {counts} ({table.seconds:.1f} s)"]
    lines = [
        f"{head}: DIFFERS: {counts}; {table.differing_segments} of the key segments differ"
        f" ({table.seconds:.1f} s)"
    ]
    for kind in ("missing", "extra", "changed"):
        keys = getattr(table, kind)
        if keys:
            more = table.counts[kind] - len(keys)
            shown = ", ".join(json.dumps(k, sort_keys=True) for k in keys)
            lines.append(
                f"  {kind} ({table.counts[kind]}): {shown}" + (f" and {more} more" if more else "")
            )
    if not table.complete:
        lines.append("  (more segments differ than were read key by key: fix these and run again)")
    return lines
