"""etl.merge_table isolates bad rows by halving, not row by row

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05 04:03:21.825221

The SQL of this revision is frozen in db/migrations/sql/0015/ and never edited.
"""

from harness import sqlversions

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    sqlversions.upgrade(revision, __file__)


def downgrade() -> None:
    sqlversions.downgrade(revision, __file__)
