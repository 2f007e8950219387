"""The ICU of ``hygie demo``: the gateway and simulated bedside devices, live.

While the demo serves, ``hygie devices listen`` runs on a free port (MLLP only: the
demo needs no MQTT broker) and ``hygie devices simulate`` sends it monitors' and
ventilators' PCD-01 messages for the first beds' patients of the demo territory (IPP 1
onwards), so that the ICU board (``/devices/``) and the patients' records show vital
signs arriving. Both are processes of their own, logging under ``<var_dir>/devices/``,
and stop with the demo.
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass, field

from hygie.channels.simulators import stop_simulators
from hygie.config import Settings
from hygie.devices.model import journal_dir

#: The demo ICU: bedside monitors, ventilators on the first of their beds, and seconds
#: between two messages of a device.
MONITORS, VENTILATORS, INTERVAL_S = 12, 4, 5.0
#: How long the gateway may take to listen.
START_TIMEOUT_S = 60.0


@dataclass
class DemoIcu:
    """The processes of the demo ICU, and the port its gateway listens on."""

    port: int = 0
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def stop(self) -> None:
        stop_simulators(self.processes)
        self.processes.clear()


def start(settings: Settings) -> DemoIcu:
    """Start the gateway, wait until it listens, then the simulated devices.

    Raises ``RuntimeError`` (with the end of its log) when the gateway does not start.
    """
    folder = journal_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    port_file = folder / "mllp.port"
    port_file.unlink(missing_ok=True)
    icu = DemoIcu()
    hygie = [sys.executable, "-m", "hygie", "devices"]
    log = folder / "demo-gateway.log"
    with log.open("ab") as out:
        gateway = subprocess.Popen([*hygie, "listen", "--no-mqtt", "--port", "0"],
                                   stdout=out, stderr=out)
    icu.processes.append(gateway)
    deadline = time.monotonic() + START_TIMEOUT_S
    while not port_file.exists():
        if gateway.poll() is not None or time.monotonic() > deadline:
            icu.stop()
            tail = log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"the devices gateway did not start:\n{tail}")
        time.sleep(0.1)
    icu.port = int(port_file.read_text())
    with (folder / "demo-simulator.log").open("ab") as out:
        icu.processes.append(subprocess.Popen(
            [*hygie, "simulate", "--port", str(icu.port), "--monitors", str(MONITORS),
             "--ventilators", str(VENTILATORS), "--interval", str(INTERVAL_S)],
            stdout=out, stderr=out))
    return icu
