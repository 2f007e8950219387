"""The ``hygie`` command."""

import click


@click.group()
def main() -> None:
    """Hygie e-health platform."""
