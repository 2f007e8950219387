"""``hygie channels``: the dispatcher, the loopback simulators, and a way to send one.

- ``hygie channels worker``: run the dispatcher (when ``hygie serve`` does not);
- ``hygie channels smsc`` / ``mail-sink`` / ``sip-peer``: the loopback simulators;
- ``hygie channels send``: queue one message (for operators and the demo);
- ``hygie channels status``: messages by status.
"""

from __future__ import annotations

import signal
import threading

import click

from hygie.config import load_settings


@click.group(name="channels")
def group() -> None:
    """SMS, e-mail and phone calls: dispatcher, simulators, sending."""


def _open() -> tuple[object, object]:
    from hygie.channels.service import channels_for
    from hygie.platform import open_platform

    platform = open_platform(load_settings())
    return platform, channels_for(platform)


@group.command()
@click.option("--only", default="", help="Channels to run, comma-separated (sms,email,voice).")
@click.option("--mirror/--no-mirror", default=True, show_default=True,
              help="Mirror messages as FHIR CommunicationRequest/Communication.")
def worker(only: str, mirror: bool) -> None:
    """Run the outbox dispatcher until stopped (SIGTERM or Ctrl-C)."""
    from hygie.channels.model import Channel
    from hygie.channels.worker import start_dispatcher

    platform, channels = _open()
    wanted = {Channel(c.strip()) for c in only.split(",") if c.strip()} or None
    dispatcher = start_dispatcher(channels, only=wanted, mirror=mirror)  # type: ignore[arg-type]
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    click.echo("channels worker running", err=True)
    stop.wait()
    dispatcher.stop()
    platform.close()  # type: ignore[attr-defined]


@group.command()
@click.option("--port", default=2775, show_default=True)
@click.option("--control-port", default=2776, show_default=True)
@click.option("--dlr-delay-ms", default=0, show_default=True)
@click.option("--record", default=None, help="JSON-lines file of what it received.")
def smsc(port: int, control_port: int, dlr_delay_ms: int, record: str | None) -> None:
    """Run the loopback SMSC (a simulator: it delivers nothing to any phone)."""
    from hygie.channels.smsc import main

    args = ["--port", str(port), "--control-port", str(control_port),
            "--dlr-delay-ms", str(dlr_delay_ms)]
    main(args + (["--record", record] if record else []))


@group.command(name="mail-sink")
@click.option("--port", default=2525, show_default=True)
@click.option("--dir", "directory", required=True, help="Folder to keep messages in.")
def mail_sink(port: int, directory: str) -> None:
    """Run the loopback SMTP sink (keeps messages as .eml files)."""
    from hygie.channels.mailsink import main

    main(["--port", str(port), "--dir", directory])


@group.command(name="sip-peer")
@click.option("--port", default=5070, show_default=True)
@click.option("--digits", default="1", show_default=True)
@click.option("--method", type=click.Choice(["rfc4733", "info"]), default="rfc4733")
@click.option("--mode", type=click.Choice(["answer", "voicemail", "busy"]), default="answer")
def sip_peer(port: int, digits: str, method: str, mode: str) -> None:
    """Run a loopback SIP phone that answers and presses keys."""
    from hygie.channels.sipua import main

    main(["--port", str(port), "--digits", digits, "--method", method, "--mode", mode])


@group.command()
@click.option("--channel", type=click.Choice(["sms", "email", "voice"]), required=True)
@click.option("--to", "recipient", required=True)
@click.option("--text", required=True)
@click.option("--subject", default=None)
@click.option("--owner", default="operator:cli", show_default=True)
@click.option("--key", default=None, help="Idempotency key (default: a new one).")
@click.option("--expect", default=None, help="Expected answers, comma-separated.")
def send(channel: str, recipient: str, text: str, subject: str | None, owner: str,
         key: str | None, expect: str | None) -> None:
    """Queue one message; the dispatcher sends it."""
    import uuid

    from hygie.channels.errors import ChannelError
    from hygie.channels.model import Channel, OutboundMessage

    platform, channels = _open()
    try:
        record = channels.enqueue(OutboundMessage(  # type: ignore[attr-defined]
            idempotency_key=key or uuid.uuid4().hex, owner=owner, channel=Channel(channel),
            recipient=recipient, text=text, subject=subject,
            expected_answers=[e.strip() for e in expect.split(",")] if expect else None))
    except ChannelError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        platform.close()  # type: ignore[attr-defined]
    click.echo(f"{record.id} {record.status}")


@group.command()
def status() -> None:
    """Messages in the outbox, by status."""
    platform, channels = _open()
    try:
        for name, count in sorted(channels.outbox.counts().items()):  # type: ignore[attr-defined]
            click.echo(f"{name}: {count}")
    finally:
        platform.close()  # type: ignore[attr-defined]
