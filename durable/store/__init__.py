"""Persistence: one protocol (base.py) with a PostgreSQL and an in-memory implementation."""
