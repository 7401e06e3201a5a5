"""Console: failure causes counted per day by the error log's trigger, every DeTrack call journaled with its request and answer, a pause stops ERP copy and status searches too

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 01:04:52.041791

The SQL of this revision is frozen in db/migrations/sql/0011/ and never edited.
"""

from harness import sqlversions

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    sqlversions.upgrade(revision, __file__)


def downgrade() -> None:
    sqlversions.downgrade(revision, __file__)
