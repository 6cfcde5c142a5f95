"""Storage: engine and unit of work, tables, dialect helpers and migrations."""
