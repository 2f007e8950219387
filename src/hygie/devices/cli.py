"""``hygie devices``: run the gateway, simulate bedside devices, read the journal."""

from __future__ import annotations

import asyncio

import click

from hygie.config import load_settings


@click.group("devices")
def group() -> None:
    """Biomedical gateway: HL7 v2 / MLLP (IHE PCD-01) and MQTT into the record."""


@group.command()
@click.option("--host", default=None, help="MLLP address (default: devices_mllp_host).")
@click.option("--port", default=None, type=int, help="MLLP port (default 2575; 0: any free).")
@click.option(
    "--mqtt/--no-mqtt",
    default=True,
    show_default=True,
    help="Subscribe to home devices on the MQTT broker.",
)
@click.option("--mqtt-host", default=None)
@click.option("--mqtt-port", default=None, type=int)
def listen(
    host: str | None, port: int | None, mqtt: bool, mqtt_host: str | None, mqtt_port: int | None
) -> None:
    """Receive PCD-01 over MLLP (and home devices over MQTT) into the FHIR store."""
    from hygie.devices.gateway import serve
    from hygie.devices.model import DevicesSettings

    settings = load_settings()
    dsettings = DevicesSettings.from_settings(
        settings, mllp_host=host, mllp_port=port, mqtt_host=mqtt_host, mqtt_port=mqtt_port
    )
    asyncio.run(
        serve(settings, dsettings, mqtt=mqtt, announce=lambda line: click.echo(line, err=True))
    )


@group.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=2575, show_default=True, type=click.IntRange(1, 65535))
@click.option("--monitors", default=40, show_default=True, type=click.IntRange(min=1),
              help="Bedside monitors.")
@click.option(
    "--ventilators", default=10, show_default=True, type=click.IntRange(min=0),
    help="Ventilators (on the first beds).",
)
@click.option("--interval", default=5.0, show_default=True,
              type=click.FloatRange(0, min_open=True), help="Seconds between messages.")
@click.option(
    "--count", default=0, show_default=True, type=click.IntRange(min=0),
    help="Messages per device (0: until --duration).",
)
@click.option("--duration", default=0.0, show_default=True, type=click.FloatRange(min=0),
              help="Seconds (0: no limit).")
@click.option("--seed", default=2020, show_default=True)
@click.option(
    "--first-ipp",
    default=1,
    show_default=True,
    help="IPP of the first bed's patient (the demo territory starts at 1).",
)
def simulate(
    host: str,
    port: int,
    monitors: int,
    ventilators: int,
    interval: float,
    count: int,
    duration: float,
    seed: int,
    first_ipp: int,
) -> None:
    """Send realistic PCD-01 traffic over MLLP from simulated ICU devices."""
    from hygie.devices.simulator import simulate as run

    if count == 0 and duration == 0:
        click.echo("Simulating until interrupted (Ctrl-C).", err=True)
    try:
        stats = asyncio.run(
            run(
                host,
                port,
                monitors,
                min(ventilators, monitors),
                interval,
                count,
                duration,
                seed,
                first_ipp,
            )
        )
    except KeyboardInterrupt:
        return
    lat = sorted(stats.latencies)
    p99 = lat[int(0.99 * (len(lat) - 1))] * 1000 if lat else 0.0
    click.echo(
        f"sent {stats.sent}, acknowledged {stats.acked}, negative {stats.negative}, "
        f"resent {stats.resent}, p99 ack latency {p99:.1f} ms"
    )


@group.command()
@click.option(
    "--days",
    default=None,
    type=float,
    help="Keep this many days (default: devices_journal_retention_days, 7).",
)
def purge(days: float | None) -> None:
    """Delete processed journal messages older than the retention (pending ones stay)."""
    from hygie.devices.journal import open_journal
    from hygie.devices.model import DevicesSettings
    from hygie.platform import open_platform
    from hygie.store.model import now_us

    settings = load_settings()
    keep = (
        days if days is not None else DevicesSettings.from_settings(settings).journal_retention_days
    )
    platform = open_platform(settings)
    try:
        removed = open_journal(platform).purge(now_us() - int(keep * 86400e6))
    finally:
        platform.close()
    click.echo(f"removed {removed} messages older than {keep:g} days")


@group.command()
def status() -> None:
    """Count journal messages by status (pending, stored, rejected)."""
    from hygie.devices.journal import open_journal
    from hygie.platform import open_platform

    platform = open_platform(load_settings())
    try:
        counts = open_journal(platform).counts()
    finally:
        platform.close()
    for name in ("pending", "stored", "rejected"):
        click.echo(f"{name}: {counts.get(name, 0)}")
