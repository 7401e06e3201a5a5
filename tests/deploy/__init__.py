"""Deployment: Alembic revisions, frozen history, drift, packaging."""
