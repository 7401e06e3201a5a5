"""file importer from review: leases kept, older versions superseded, spent files dead

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-05 05:01:51.464808

The SQL of this revision is frozen in db/migrations/sql/0017/ and never edited.
"""

from harness import sqlversions

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    sqlversions.upgrade(revision, __file__)


def downgrade() -> None:
    sqlversions.downgrade(revision, __file__)
