"""ERP triggers record changed shipment numbers (delivery.erp_change); the worker copies and maps them (delivery.sync_erp_changes); a settings change re-evaluates shipments

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22 01:59:17.318987

The SQL of this revision is frozen in db/migrations/sql/0007/ and never edited.
"""

from harness import sqlversions

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    sqlversions.upgrade(revision, __file__)


def downgrade() -> None:
    sqlversions.downgrade(revision, __file__)
