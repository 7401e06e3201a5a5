"""standard merge, CDC window overlap and full reload, masking for extracts

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 23:56:35.681111

The SQL of this revision is frozen in db/migrations/sql/0002/ and never edited.
"""

from harness import sqlversions

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    sqlversions.upgrade(revision, __file__)


def downgrade() -> None:
    sqlversions.downgrade(revision, __file__)
