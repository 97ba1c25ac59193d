"""Warehouse access: connection settings, migrations and the embedded Postgres."""
