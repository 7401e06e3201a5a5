"""operations: journal verification, lag alerts, scheduled dead-letter retry

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 00:59:39.969469

The SQL of this revision is frozen in db/migrations/sql/0005/ and never edited.
"""

from harness import sqlversions

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    sqlversions.upgrade(revision, __file__)


def downgrade() -> None:
    sqlversions.downgrade(revision, __file__)
