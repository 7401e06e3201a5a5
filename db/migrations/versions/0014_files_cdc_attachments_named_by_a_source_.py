"""Files CDC: attachments named by a source table copied between buckets, checksummed and idempotent

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05 01:47:40.169231

The SQL of this revision is frozen in db/migrations/sql/0014/ and never edited.
"""

from harness import sqlversions

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    sqlversions.upgrade(revision, __file__)


def downgrade() -> None:
    sqlversions.downgrade(revision, __file__)
