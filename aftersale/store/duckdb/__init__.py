"""The DuckDB backend: one file, one writer process (see connection.py)."""
