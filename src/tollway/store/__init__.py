"""Persistence: tables, engine, migrations (Alembic), and queries by concept."""
