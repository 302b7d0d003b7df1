"""The PostgreSQL backend: several worker processes on one database (leases)."""
