"""fixes from review: status poll rotation, key changes, in-flight changes, permit copies in flight, cleared ship-via, journal clock, lock order, mask rule names

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22 01:16:30.270630

The SQL of this revision is frozen in db/migrations/sql/0006/ and never edited.
"""

from harness import sqlversions

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    sqlversions.upgrade(revision, __file__)


def downgrade() -> None:
    sqlversions.downgrade(revision, __file__)
