"""Benchmark: etl.merge_table against COPY of the same rows, and against a row-by-row merge.

Input: N staged rows (default 1,000,000): half new, a quarter changed, a quarter unchanged. The
baseline is COPY FROM STDIN of the same rows into an empty table shaped like the target
(primary key included), in the same run. Target: merge throughput >= 0.6 of COPY's. Also: the
same rows with one bad row (a CHECK the target refuses) merged into an empty table, where the
fallback isolates the row by merging halves; and a row-by-row merge of a sample.

    python bench/merge.py [--rows 1000000] [--row-by-row-sample 20000]
    BENCH_SERVER_URL=postgresql://postgres@127.0.0.1:5432/postgres python bench/merge.py
"""

from __future__ import annotations

import argparse
import io

import psycopg

from bench.common import scratch_database, timed

COLUMNS = (
    "id bigint PRIMARY KEY, customer text, city text, amount numeric(12,2), shipped date, note text"
)
TRACKING = "inserted_at timestamptz, updated_at timestamptz, deleted_at timestamptz"

# one generated row per id; `variant` changes the values of the changed quarter
ROWS_SQL = """
SELECT g, 'customer ' || (g % 50000),
       (ARRAY['Victoria', 'Vancouver', 'Kelowna', 'Prince George'])[1 + g % 4],
       round((g % 100000) / 7.0, 2) + {variant}, date '2026-01-01' + (g % 365),
       CASE WHEN g % 10 = 0 THEN NULL ELSE 'note ' || g END
  FROM generate_series({first}, {last}) AS g
"""

ROW_BY_ROW = """
DO $$
DECLARE r record;
BEGIN
    FOR r IN SELECT * FROM stg_sample LOOP
        UPDATE tgt_rows AS t SET customer = r.customer, city = r.city, amount = r.amount,
               shipped = r.shipped, note = r.note, updated_at = now()
         WHERE t.id = r.id
           AND (t.customer, t.city, t.amount, t.shipped, t.note)
               IS DISTINCT FROM (r.customer, r.city, r.amount, r.shipped, r.note);
        IF NOT FOUND AND NOT EXISTS (SELECT FROM tgt_rows WHERE id = r.id) THEN
            INSERT INTO tgt_rows VALUES (r.id, r.customer, r.city, r.amount, r.shipped, r.note,
                                         now(), now());
        END IF;
    END LOOP;
END $$;
"""


def csv_of(conn: psycopg.Connection, first: int, last: int, variant: int = 0) -> bytes:
    query = ROWS_SQL.format(first=first, last=last, variant=variant)
    buffer = io.BytesIO()
    with conn.cursor().copy(f"COPY ({query}) TO STDOUT") as copy:
        for block in copy:
            buffer.write(block)
    return buffer.getvalue()


def copy_in(conn: psycopg.Connection, table: str, data: bytes) -> None:
    with conn.cursor().copy(f"COPY {table} FROM STDIN") as copy:
        copy.write(data)


def prepare(conn: psycopg.Connection, rows: int) -> bytes:
    """Staging holds all rows; the target holds the changed and unchanged halves already."""
    half, quarter = rows // 2, rows // 4
    conn.execute(f"CREATE TABLE stg ({COLUMNS}); CREATE TABLE tgt ({COLUMNS}, {TRACKING})")
    staged = csv_of(conn, 1, rows)
    copy_in(conn, "stg", staged)
    target_columns = "tgt (id, customer, city, amount, shipped, note)"
    copy_in(conn, target_columns, csv_of(conn, 1, quarter, variant=1))
    copy_in(conn, target_columns, csv_of(conn, quarter + 1, half))
    conn.execute("VACUUM ANALYZE stg")
    conn.execute("VACUUM ANALYZE tgt")
    return staged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--row-by-row-sample", type=int, default=20_000)
    args = parser.parse_args()
    seconds: dict[str, float] = {}

    with scratch_database() as url, psycopg.connect(url, autocommit=True) as conn:
        staged = prepare(conn, args.rows)
        conn.execute(f"CREATE TABLE copy_target ({COLUMNS}, {TRACKING})")
        with timed("copy", seconds):
            copy_in(conn, "copy_target (id, customer, city, amount, shipped, note)", staged)
        conn.execute("CHECKPOINT")

        with timed("merge", seconds):
            counts = conn.execute("SELECT * FROM etl.merge_table('stg', 'tgt')").fetchone()

        # the same rows with one bad row, into an empty table: the fallback halves the source
        bad = args.rows // 3
        conn.execute(
            f"CREATE TABLE stg_bad AS SELECT * FROM stg; UPDATE stg_bad SET amount = -1"
            f" WHERE id = {bad}; CREATE TABLE tgt_bad ({COLUMNS}, {TRACKING}, CHECK (amount >= 0))"
        )
        conn.execute("VACUUM ANALYZE stg_bad")
        conn.execute("CHECKPOINT")
        with timed("one_bad_row", seconds):
            bad_counts = conn.execute(
                "SELECT inserted, failed FROM etl.merge_table('stg_bad', 'tgt_bad')"
            ).fetchone()
        if bad_counts != (args.rows - 1, 1):
            raise RuntimeError(f"one bad row: merged {bad_counts}, expected {args.rows - 1}, 1")

        sample = args.row_by_row_sample
        conn.execute(
            f"CREATE TABLE tgt_rows ({COLUMNS}, inserted_at timestamptz, updated_at timestamptz);"
            f" INSERT INTO tgt_rows (id, customer, city, amount, shipped, note)"
            f" SELECT id, customer, city, amount + (id <= {sample // 4})::int, shipped, note"
            f" FROM stg WHERE id <= {sample // 2};"
            f" CREATE TABLE stg_sample AS SELECT * FROM stg WHERE id <= {sample}"
        )
        conn.execute("VACUUM ANALYZE tgt_rows")
        conn.execute("VACUUM ANALYZE stg_sample")
        with timed("row_by_row", seconds):
            conn.execute(ROW_BY_ROW)

    copy_rate = args.rows / seconds["copy"]
    merge_rate = args.rows / seconds["merge"]
    row_rate = sample / seconds["row_by_row"]
    inserted, updated, unchanged, deleted, failed = counts
    print(
        f"rows staged: {args.rows:,} (merge counts: {inserted:,} inserted, {updated:,} updated,"
        f" {unchanged:,} unchanged, {deleted:,} deleted, {failed:,} failed)"
    )
    print(f"COPY into empty table : {seconds['copy']:7.2f} s  {copy_rate:12,.0f} rows/s")
    print(f"etl.merge_table       : {seconds['merge']:7.2f} s  {merge_rate:12,.0f} rows/s")
    print(
        f"row-by-row merge      : {seconds['row_by_row']:7.2f} s  {row_rate:12,.0f} rows/s"
        f"  ({sample:,}-row sample, same mix)"
    )
    print(
        f"one bad row, all new  : {seconds['one_bad_row']:7.2f} s"
        f"  ({args.rows - 1:,} inserted, 1 logged; the source merged in halves)"
    )
    print(f"ratio merge / COPY    : {merge_rate / copy_rate:.2f}   (target >= 0.60)")
    print(f"ratio row-by-row / COPY: {row_rate / copy_rate:.2f}")
    print(f"set-based speed-up over row-by-row: {merge_rate / row_rate:.1f}x")


if __name__ == "__main__":
    main()
