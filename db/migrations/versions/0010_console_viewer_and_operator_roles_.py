"""Console: viewer and operator roles, worker registry with heartbeats, pipeline pause honoured by claims, operator actions journaled with who and why, previews, console read functions

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 22:22:34.298368

The SQL of this revision is frozen in db/migrations/sql/0010/ and never edited.
"""

from harness import sqlversions

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    sqlversions.upgrade(revision, __file__)


def downgrade() -> None:
    sqlversions.downgrade(revision, __file__)
