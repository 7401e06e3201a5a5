"""delivery.waiting_work: what a shipment run would find to do now, for the Airflow asset watcher

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-06 00:57:14.520628

The SQL of this revision is frozen in db/migrations/sql/0020/ and never edited.
"""

from harness import sqlversions

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    sqlversions.upgrade(revision, __file__)


def downgrade() -> None:
    sqlversions.downgrade(revision, __file__)
