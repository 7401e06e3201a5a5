"""Deployment: the SQL package's layout, its Alembic revisions, frozen history and drift check."""
