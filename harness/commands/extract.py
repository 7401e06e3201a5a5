"""`harness extract`: obfuscated development extracts."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from harness.commands.common import console, out, require_database
from harness.ops.extract import ExtractedTable


def extract(
    tables: Annotated[list[str], typer.Argument(help="Tables to export, e.g. stg.client.")],
    to: Annotated[
        str, typer.Option("--to", help="A folder, or s3://bucket/prefix (S3_ENDPOINT_URL, AWS_*).")
    ],
    obfuscate: Annotated[
        bool,
        typer.Option(
            "--obfuscate/--plain",
            help="Mask the columns listed in etl.mask_rule (default) or export as is.",
        ),
    ] = True,
) -> None:
    """Export tables as gzipped CSV for development data, sensitive columns masked in SQL.

    One file per table, <schema>.<table>.csv.gz, always inside --to. The hash salt comes from
    PGFERRY_MASK_SALT; keep it secret and stable so hashes stay joinable.
    """
    from harness.ops import extract as extracting
    from harness.s3 import S3Location

    if to.startswith("s3://") and len(to.removeprefix("s3://").strip("/")) == 0:
        raise typer.BadParameter("name a bucket: s3://bucket/prefix", param_hint="--to")
    url = require_database()
    salt = os.environ.get("PGFERRY_MASK_SALT", "")
    if obfuscate and not salt:
        console.print("[yellow]warning:[/] PGFERRY_MASK_SALT is not set; hashes are unsalted")
    if to.startswith("s3://"):
        uploaded = extracting.extract_to_s3(
            url,
            tables,
            S3Location.parse(to),
            endpoint_url=os.environ.get("S3_ENDPOINT_URL"),
            obfuscate=obfuscate,
            salt=salt,
        )
        for table, key in uploaded:
            _report(table, f"{to.split('/')[2]}/{key}", obfuscate)
        return
    extracting.extract_tables(
        url,
        tables,
        Path(to),
        obfuscate=obfuscate,
        salt=salt,
        on_table=lambda table: _report(table, str(table.path), obfuscate),
    )


def _report(table: ExtractedTable, where: str, obfuscate: bool) -> None:
    masked = f", {table.masked_columns} column(s) masked" if obfuscate else ""
    out.print(f"{table.table}: {table.rows} rows -> {where}{masked}", markup=False)
    if obfuscate and table.masked_columns == 0:
        console.print(
            f"[yellow]warning:[/] no etl.mask_rule masks {escape(table.table)}:"
            " it was exported as is",
            highlight=False,
        )
