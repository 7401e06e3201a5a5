"""Fencing tokens and heartbeats for claims, one DeTrack limit in PostgreSQL, stale-create and key-change recovery, lag from first due, TRUNCATE, stranded staged rows, alert leases

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 17:36:59.392682

The SQL of this revision is frozen in db/migrations/sql/0008/ and never edited.
"""

from harness import sqlversions

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    sqlversions.upgrade(revision, __file__)


def downgrade() -> None:
    sqlversions.downgrade(revision, __file__)
