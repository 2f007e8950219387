"""Settings of the channels package, with defaults that need no operator at all.

By default the platform talks to its own loopback simulators (an SMSC on port 2775
and an SMTP sink on port 2525, started by ``hygie serve``), so a demo sends nothing
to anyone. Values come from the ``[hygie.channels]`` table of the platform's TOML file
(``settings.extra["channels"]``), then from ``HYGIE_CHANNELS_<FIELD>`` variables.
Every rate and size limit is here.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, fields
from typing import Any, get_type_hints

from hygie.config import Settings


@dataclass(frozen=True)
class ChannelSettings:
    """Transport, queue and limit settings of the channels package."""

    #: Start the channels with the web app (``hygie serve`` turns it on; an app built
    #: by a test does not send anything unless asked).
    autostart: bool = False
    #: Start the loopback SMSC, mail sink and SIP phone with the server (demo).
    simulator: bool = True
    #: Run the outbox dispatcher inside ``hygie serve`` (else: ``hygie channels worker``).
    worker: bool = True

    # --- SMS (SMPP v3.4) -------------------------------------------------------
    smpp_host: str = "127.0.0.1"
    smpp_port: int = 2775
    smpp_system_id: str = "hygie"
    smpp_password: str = "hygie"
    smpp_system_type: str = ""
    #: Sender shown on phones: alphanumeric (TON 5) or a number (TON 1).
    smpp_source_addr: str = "HYGIE"
    #: Most submit_sm awaiting their response at once (the SMSC's window).
    smpp_window: int = 32
    #: Most submit_sm per second the SMSC allows (0: no limit of ours).
    smpp_max_rate: float = 0.0
    #: Seconds of silence before an enquire_link (keepalive).
    smpp_enquire_link_s: float = 30.0
    #: Seconds to wait for any response before the link is taken as dead.
    smpp_response_timeout_s: float = 10.0
    #: Longest pause between two reconnection attempts (exponential backoff).
    smpp_reconnect_max_s: float = 30.0
    #: Most parts one SMS may take.
    max_sms_parts: int = 10
    #: Region used to read national numbers (0612345678 -> +33612345678).
    phone_region: str = "FR"

    # --- e-mail (SMTP) ---------------------------------------------------------
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 2525
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_from: str = "Hygie <ne-pas-repondre@hygie.localhost>"
    #: ``auto`` (STARTTLS when offered), ``require`` (refuse to send in clear), ``never``.
    smtp_starttls: str = "auto"
    #: CA bundle to check the server's certificate (empty: the system's).
    smtp_ca_file: str = ""
    smtp_timeout_s: float = 10.0
    #: Lifetime of the answer links carried by e-mails.
    answer_link_ttl_s: int = 7 * 24 * 3600

    # --- phone (SIP) -----------------------------------------------------------
    #: host:port of the SIP trunk or user agent; calls go to sip:<number>@<trunk>.
    sip_trunk: str = "127.0.0.1:5070"
    #: Local SIP port (0: any free port).
    sip_local_port: int = 0
    sip_from_user: str = "hygie"
    #: Seconds a call may ring before it counts as not answered.
    sip_ring_timeout_s: float = 30.0
    #: Seconds to wait for a key press once the prompt has been played.
    sip_digit_timeout_s: float = 15.0
    #: Times the prompt is played before giving up.
    sip_prompt_repeats: int = 2
    sip_max_calls: int = 4
    #: espeak-ng voice of the spoken messages.
    tts_voice: str = "fr"

    # --- outbox ----------------------------------------------------------------
    batch_size: int = 200
    max_attempts: int = 8
    retry_base_s: float = 5.0
    retry_max_s: float = 900.0
    #: Seconds a worker holds a message it is sending before others may take it.
    lease_s: float = 60.0
    #: Seconds to wait for a receipt that settles a part in doubt before resending it.
    in_doubt_grace_s: float = 300.0
    #: Seconds between two passes of the dispatcher when idle.
    poll_s: float = 0.2
    #: Least seconds between the starts of two passes of receipts and answers (unless
    #: one found a batch's worth): each pass is a transaction, and a hundred receipts
    #: cost about what ten do.
    housekeeping_s: float = 0.1
    #: Answers handed to their owners' handlers per pass: a batch handler takes them in
    #: one transaction, and its per-batch work (locks, look-ups, the hand-over of the
    #: next messages) is paid once for all (2,000 answered 1.3 times faster than 500).
    answers_batch: int = 2000
    #: Replies meaning "send me nothing more", and "send again" (upper case, no accent).
    optout_keywords: str = "STOP,ARRET,STOPSMS,DESABONNER,DESINSCRIRE,UNSUBSCRIBE"
    optin_keywords: str = "START,REPRISE"

    def replace(self, **changes: Any) -> ChannelSettings:
        return dataclasses.replace(self, **changes)


def _coerce(kind: Any, raw: Any) -> Any:
    if kind is bool:
        return raw if isinstance(raw, bool) else str(raw).strip().lower() in {
            "1", "true", "yes", "on"}
    if kind is int:
        return int(raw)
    if kind is float:
        return float(raw)
    return str(raw)


def channel_settings(settings: Settings, **overrides: Any) -> ChannelSettings:
    """The channels settings of this platform (TOML table, then environment, then
    explicit overrides)."""
    hints = get_type_hints(ChannelSettings)
    values: dict[str, Any] = {}
    table = settings.extra.get("channels", {})
    names = {f.name for f in fields(ChannelSettings)}
    for key, raw in (table.items() if isinstance(table, dict) else ()):
        if key in names:
            values[key] = _coerce(hints[key], raw)
    for name in names:
        env = os.environ.get("HYGIE_CHANNELS_" + name.upper())
        if env is not None:
            values[name] = _coerce(hints[name], env)
    for key, raw in overrides.items():
        values[key] = _coerce(hints[key], raw)
    return ChannelSettings(**values)
