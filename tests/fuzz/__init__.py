"""The fuzz harness: hostile requests to every RPC on SQLite and PostgreSQL.

`scripts/fuzz` runs it at scale (python -m tests.fuzz); tests/test_fuzz.py runs a
bounded version in the default test run."""
