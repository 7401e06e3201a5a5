"""file importer: sources, files, leases, steps

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05 04:36:43.546111

The SQL of this revision is frozen in db/migrations/sql/0016/ and never edited.
"""

from harness import sqlversions

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    sqlversions.upgrade(revision, __file__)


def downgrade() -> None:
    sqlversions.downgrade(revision, __file__)
