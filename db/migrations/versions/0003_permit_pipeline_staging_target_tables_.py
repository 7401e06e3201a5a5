"""permit pipeline: staging, target tables, journal, claim/move/retry; insert-only merge

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 00:04:21.350174

The SQL of this revision is frozen in db/migrations/sql/0003/ and never edited.
"""

from harness import sqlversions

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    sqlversions.upgrade(revision, __file__)


def downgrade() -> None:
    sqlversions.downgrade(revision, __file__)
