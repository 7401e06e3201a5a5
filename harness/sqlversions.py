"""Stable import path for the sealed revision scripts (``from harness import sqlversions``).

Sealed history is never edited, so this name must keep working; the code lives in
harness.deploy.versions.
"""

from harness.deploy.versions import downgrade, upgrade

__all__ = ["downgrade", "upgrade"]
