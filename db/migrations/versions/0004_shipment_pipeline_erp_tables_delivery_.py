"""shipment pipeline: ERP tables, delivery copy, DeTrack jobs, trigger chain, dispatch state

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 00:25:47.366944

The SQL of this revision is frozen in db/migrations/sql/0004/ and never edited.
"""

from harness import sqlversions

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    sqlversions.upgrade(revision, __file__)


def downgrade() -> None:
    sqlversions.downgrade(revision, __file__)
