"""Hygie: an open-source e-health platform for a hospital territory in a health crisis."""

__version__ = "0.1.0"
