"""etl foundation: process control, error log, alert outbox, roles

Revision ID: 0001
Revises:
Create Date: 2026-11-21

The SQL of this revision is frozen in db/migrations/sql/0001/ and never edited.
"""

from harness import sqlversions

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    sqlversions.upgrade(revision, __file__)


def downgrade() -> None:
    sqlversions.downgrade(revision, __file__)
