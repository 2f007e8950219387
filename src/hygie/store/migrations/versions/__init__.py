"""Migrations of the store tables (branch ``store``)."""
