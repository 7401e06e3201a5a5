"""Least privilege that holds (a NOLOGIN owner role for SECURITY DEFINER routines, column grants), wider secret redaction, error logging that never raises, fixes from the issue 11 review

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 21:30:07.571566

The SQL of this revision is frozen in db/migrations/sql/0009/ and never edited.
"""

from harness import sqlversions

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    sqlversions.upgrade(revision, __file__)


def downgrade() -> None:
    sqlversions.downgrade(revision, __file__)
