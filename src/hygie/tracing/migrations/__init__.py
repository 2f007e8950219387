"""Migrations of the tracing tables (branch ``tracing``)."""
