"""File importer: one fence (files.held_file) and one dead-letter writer (files.bury) for record_step, record_failure, begin_load and claim_files; a file whose lease expired max_attempts times is logged in etl.error_log too

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-05 21:34:01.574685

The SQL of this revision is frozen in db/migrations/sql/0018/ and never edited.
"""

from harness import sqlversions

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    sqlversions.upgrade(revision, __file__)


def downgrade() -> None:
    sqlversions.downgrade(revision, __file__)
