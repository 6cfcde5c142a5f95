"""Alembic migrations: the only owner of the schema, on both dialects."""
