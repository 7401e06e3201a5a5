"""Cutover verification: key indicators declared in etl.cutover_indicator, every check kept in etl.cutover_check

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05 01:40:47.108700

The SQL of this revision is frozen in db/migrations/sql/0013/ and never edited.
"""

from harness import sqlversions

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    sqlversions.upgrade(revision, __file__)


def downgrade() -> None:
    sqlversions.downgrade(revision, __file__)
