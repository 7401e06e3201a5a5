"""One leader for housekeeping: etl.leader, a lease row with a TTL (etl.take_lead, etl.resign_lead)

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-05 21:43:30.261809

The SQL of this revision is frozen in db/migrations/sql/0019/ and never edited.
"""

from harness import sqlversions

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    sqlversions.upgrade(revision, __file__)


def downgrade() -> None:
    sqlversions.downgrade(revision, __file__)
