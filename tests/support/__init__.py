"""Helpers shared by the tests: servers on loopback, databases, staged data."""
