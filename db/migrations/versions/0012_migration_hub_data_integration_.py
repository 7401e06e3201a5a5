"""Migration hub: data-integration processes as metadata (etl.di_process, etl.define_di_process), each run an etl.process of its own pipeline closed by etl.end_di_run

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05 01:29:40.037325

The SQL of this revision is frozen in db/migrations/sql/0012/ and never edited.
"""

from harness import sqlversions

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    sqlversions.upgrade(revision, __file__)


def downgrade() -> None:
    sqlversions.downgrade(revision, __file__)
