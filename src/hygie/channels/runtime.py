"""Starting the channels with the web app: simulators first, then the dispatcher.

``app.py`` calls :func:`start_with_app` from its lifespan. It does nothing unless
``autostart`` is on, which ``hygie serve`` sets (``HYGIE_CHANNELS_AUTOSTART``), so that
an app built by a test sends nothing and starts no process.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from hygie.channels.service import channels_for
from hygie.platform import Platform

log = logging.getLogger("hygie.channels")


def start_with_app(platform: Platform) -> Callable[[], None]:
    """Start what the settings ask for; return the function that stops it."""
    channels = channels_for(platform)
    s = channels.settings
    if not s.autostart:
        return lambda: None
    processes = []
    if s.simulator:
        from hygie.channels.simulators import start_simulators

        processes = start_simulators(platform.settings, s)
    dispatcher = None
    if s.worker:
        from hygie.channels.worker import start_dispatcher

        dispatcher = start_dispatcher(channels)

    def stop() -> None:
        if dispatcher is not None:
            dispatcher.stop()
        if processes:
            from hygie.channels.simulators import stop_simulators

            stop_simulators(processes)

    return stop
