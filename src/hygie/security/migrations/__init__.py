"""Migrations of the security tables (branch ``security``)."""
