"""A PCD-01 traffic generator: ICU monitors and ventilators talking MLLP to the gateway.

Each simulated device keeps one MLLP connection, sends an ORU^R01 every ``interval``
seconds with values that drift like a patient's (and now and then leave the usual
range), waits for its acknowledgment and sends the same message again (same MSH-10)
when none comes or the connection drops, as a device does. It is also the load
generator of ``bench/devices_mllp.py`` (``monitor_message`` builds a 10-OBX message).

Messages follow the IHE PCD-01 examples of PCD TF-2 appendix E: MSH-21 names the
PCD-01 profile, PID-3 the patient's IPP, PV1-3 the bed, OBR-3 the device's EUI-64 and
OBX-4 the 11073 containment tree (MDS, VMD, channel rows with OBX-11 = X).
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

START, END = b"\x0b", b"\x1c\r"
PARIS = ZoneInfo("Europe/Paris")
PCD01_PROFILE = "IHE_PCD_001^IHE PCD^1.3.6.1.4.1.19376.1.6.1.1.1^ISO"

#: (facility, unit, number of ICU rooms) of the demo territory, in the simulator's order.
DEMO_ICUS = (("ch-jeanne-sorel", "icu", 16), ("ch-deux-rives", "icu", 10))


def hl7_now(when: float | None = None) -> str:
    moment = datetime.fromtimestamp(when if when is not None else time.time(), PARIS)
    return moment.strftime("%Y%m%d%H%M%S") + moment.strftime("%z")


@dataclass
class Patient:
    """A patient's drifting vitals."""

    rng: random.Random
    hr: float = 85.0
    spo2: float = 95.0
    rr: float = 18.0
    sys: float = 120.0
    dia: float = 70.0
    temp: float = 37.2
    fio2: float = 40.0
    peep: float = 8.0
    vt: float = 420.0

    def step(self) -> None:
        r = self.rng
        self.hr = min(190, max(35, self.hr + r.gauss(0, 2) + (85 - self.hr) * 0.05))
        self.spo2 = min(100, max(70, self.spo2 + r.gauss(0, 0.6) + (95 - self.spo2) * 0.1))
        self.rr = min(45, max(6, self.rr + r.gauss(0, 0.8) + (18 - self.rr) * 0.05))
        self.sys = min(220, max(60, self.sys + r.gauss(0, 3) + (120 - self.sys) * 0.05))
        self.dia = min(self.sys - 20, max(30, self.dia + r.gauss(0, 2) + (70 - self.dia) * 0.05))
        self.temp = min(41, max(34.5, self.temp + r.gauss(0, 0.03)))
        if r.random() < 0.02:  # an episode: desaturation or tachycardia
            if r.random() < 0.5:
                self.spo2 -= r.uniform(5, 12)
            else:
                self.hr += r.uniform(25, 45)


@dataclass
class SimDevice:
    """One simulated bedside device."""

    eui64: str
    kind: str
    ipp: str
    facility: str
    unit: str
    room: str
    bed: str
    patient: Patient
    counter: int = 0
    name: tuple[str, str] = ("", "")
    #: What makes this run's message ids differ from an earlier run's (the start second,
    #: base 36): the gateway stores a repeated MSH-10 once, as a resent message, so a
    #: restarted simulator counting from 1 again would be heard as repeating itself.
    #: With it an id is 20 characters, the length HL7 v2.5 allows MSH-10.
    run: str = ""

    def next_control_id(self) -> str:
        self.counter += 1
        return f"{self.eui64[-6:]}{self.run}{self.counter:08d}"


def _obx(
    n: int,
    vt: str,
    code: str,
    path: str,
    value: str,
    unit: str,
    eui: str,
    when: str,
    status: str = "R",
    ref: str = "",
) -> str:
    return (
        f"OBX|{n}|{vt}|{code}|{path}|{value}|{unit}|{ref}||||{status}|||{when}||||"
        f"{eui}^^{eui}^EUI-64"
    )


def _header(device: SimDevice, control: str, when: str, accept: str, app: str) -> list[str]:
    eui = device.eui64
    return [
        f"MSH|^~\\&|HYGIE-SIM^{eui}^EUI-64|{device.facility}|HYGIE|GHT|{when}||ORU^R01^ORU_R01|"
        f"{control}|P|2.6|||{accept}|{app}||UNICODE UTF-8|||{PCD01_PROFILE}",
        f"PID|||{device.ipp}^^^HYGIE^PI||{device.name[0]}^{device.name[1]}^^^^^L",
        f"PV1||I|{device.unit}^{device.room}^{device.bed}^{device.facility}",
        f"OBR|1|{control}^HYGIE-SIM^{eui}^EUI-64|{control}^HYGIE-SIM^{eui}^EUI-64|"
        f"182777000^monitoring of patient^SCT|||{when}",
    ]


def monitor_message(
    device: SimDevice,
    control: str,
    when: str,
    accept: str = "NE",
    app: str = "AL",
    hierarchy: bool = True,
) -> bytes:
    """A monitor's ORU^R01: its MDS row (unless ``hierarchy`` is False) and 10 metrics
    (HR, SpO2, pulse, RR, NIBP, arterial pressure, temperature)."""
    p, e = device.patient, device.eui64
    rows = _header(device, control, when, accept, app)
    if hierarchy:
        rows.append(
            _obx(
                1,
                "",
                "69965^MDC_DEV_MON_PHYSIO_MULTI_PARAM_MDS^MDC",
                "1.0.0.0",
                "",
                "",
                e,
                when,
                "X",
            )
        )
    rows += [
        _obx(
            2,
            "NM",
            "147842^MDC_ECG_HEART_RATE^MDC",
            "1.1.1.1",
            f"{p.hr:.0f}",
            "264864^MDC_DIM_BEAT_PER_MIN^MDC",
            e,
            when,
            ref="50-120",
        ),
        _obx(
            3,
            "NM",
            "150456^MDC_PULS_OXIM_SAT_O2^MDC",
            "1.2.1.1",
            f"{p.spo2:.0f}",
            "262688^MDC_DIM_PERCENT^MDC",
            e,
            when,
            ref="92-100",
        ),
        _obx(
            4,
            "NM",
            "149530^MDC_PULS_OXIM_PULS_RATE^MDC",
            "1.2.1.2",
            f"{p.hr + 1:.0f}",
            "264864^MDC_DIM_BEAT_PER_MIN^MDC",
            e,
            when,
        ),
        _obx(
            5,
            "NM",
            "151562^MDC_RESP_RATE^MDC",
            "1.3.1.1",
            f"{p.rr:.0f}",
            "264928^MDC_DIM_RESP_PER_MIN^MDC",
            e,
            when,
        ),
        _obx(
            6,
            "NM",
            "150021^MDC_PRESS_BLD_NONINV_SYS^MDC",
            "1.4.1.1",
            f"{p.sys:.0f}",
            "266016^MDC_DIM_MMHG^MDC",
            e,
            when,
        ),
        _obx(
            7,
            "NM",
            "150022^MDC_PRESS_BLD_NONINV_DIA^MDC",
            "1.4.1.2",
            f"{p.dia:.0f}",
            "266016^MDC_DIM_MMHG^MDC",
            e,
            when,
        ),
        _obx(
            8,
            "NM",
            "150033^MDC_PRESS_BLD_ART_SYS^MDC",
            "1.5.1.1",
            f"{p.sys + 4:.0f}",
            "266016^MDC_DIM_MMHG^MDC",
            e,
            when,
        ),
        _obx(
            9,
            "NM",
            "150034^MDC_PRESS_BLD_ART_DIA^MDC",
            "1.5.1.2",
            f"{p.dia - 2:.0f}",
            "266016^MDC_DIM_MMHG^MDC",
            e,
            when,
        ),
        _obx(
            10,
            "NM",
            "150035^MDC_PRESS_BLD_ART_MEAN^MDC",
            "1.5.1.3",
            f"{(p.sys + 2 * p.dia) / 3:.0f}",
            "266016^MDC_DIM_MMHG^MDC",
            e,
            when,
        ),
        _obx(
            11,
            "NM",
            "150364^MDC_TEMP_BODY^MDC",
            "1.6.1.1",
            f"{p.temp:.1f}",
            "268192^MDC_DIM_DEGC^MDC",
            e,
            when,
        ),
    ]
    return "\r".join(rows).encode("utf-8")


def ventilator_message(
    device: SimDevice, control: str, when: str, accept: str = "NE", app: str = "AL"
) -> bytes:
    """A ventilator's ORU^R01: settings and measured values."""
    p, e = device.patient, device.eui64
    rows = _header(device, control, when, accept, app)
    rows += [
        _obx(1, "", "70001^MDC_DEV_SYS_PT_VENT_MDS^MDC", "1.0.0.0", "", "", e, when, "X"),
        _obx(2, "", "70002^MDC_DEV_SYS_PT_VENT_VMD^MDC", "1.1.0.0", "", "", e, when, "X"),
        _obx(
            3,
            "NM",
            "152196^MDC_CONC_AWAY_O2_INSP^MDC",
            "1.1.1.1",
            f"{p.fio2:.0f}",
            "262688^MDC_DIM_PERCENT^MDC",
            e,
            when,
        ),
        _obx(
            4,
            "NM",
            "151976^MDC_VENT_PRESS_AWAY_END_EXP_POS^MDC",
            "1.1.1.2",
            f"{p.peep:.0f}",
            "266048^MDC_DIM_CM_H2O^MDC",
            e,
            when,
        ),
        _obx(
            5,
            "NM",
            "151980^MDC_VENT_VOL_TIDAL^MDC",
            "1.1.1.3",
            f"{p.vt:.0f}",
            "263762^MDC_DIM_MILLI_L^MDC",
            e,
            when,
        ),
        _obx(
            6,
            "NM",
            "151586^MDC_VENT_RESP_RATE^MDC",
            "1.1.1.4",
            f"{p.rr:.0f}",
            "264928^MDC_DIM_RESP_PER_MIN^MDC",
            e,
            when,
        ),
        _obx(
            7,
            "NM",
            "16929196^MDC_VENT_VOL_TIDAL_SETTING^MDC",
            "1.1.1.5",
            "420",
            "263762^MDC_DIM_MILLI_L^MDC",
            e,
            when,
        ),
        _obx(
            8,
            "NM",
            "16928802^MDC_VENT_RESP_RATE_SETTING^MDC",
            "1.1.1.6",
            "18",
            "264928^MDC_DIM_RESP_PER_MIN^MDC",
            e,
            when,
        ),
    ]
    return "\r".join(rows).encode("utf-8")


def make_devices(
    monitors: int, ventilators: int, seed: int = 2020, first_ipp: int = 1
) -> list[SimDevice]:
    """Monitors on the demo territory's ICU beds (then on extra beds), ventilators on the
    first beds, each bed with its patient."""
    rng = random.Random(seed)
    beds: list[tuple[str, str, str, str]] = []
    for facility, unit, rooms in DEMO_ICUS:
        beds += [(facility, unit, f"1{r:02d}", "a") for r in range(1, rooms + 1)]
    extra = max(0, monitors - len(beds))
    beds += [("ch-jeanne-sorel", "icu-ext", f"9{r:02d}", "a") for r in range(1, extra + 1)]
    devices = []
    for i in range(monitors):
        facility, unit, room, bed = beds[i]
        patient = Patient(random.Random(rng.random()))
        ipp = f"{first_ipp + i:010d}"
        devices.append(
            SimDevice(f"0012A1FFFE{i:06X}", "monitor", ipp, facility, unit, room, bed, patient)
        )
        if i < ventilators:
            devices.append(
                SimDevice(
                    f"0012A2FFFE{i:06X}", "ventilator", ipp, facility, unit, room, bed, patient
                )
            )
    return devices


@dataclass
class Stats:
    sent: int = 0
    acked: int = 0
    negative: int = 0
    resent: int = 0
    latencies: list[float] = field(default_factory=list)


async def read_ack(reader: asyncio.StreamReader) -> bytes:
    """One MLLP frame's content."""
    data = await reader.readuntil(END)
    start = data.find(START)
    return data[start + 1 : -2]


def ack_code(frame: bytes) -> str:
    for segment in frame.split(b"\r"):
        if segment.startswith(b"MSA"):
            return segment.split(b"|")[1].decode("ascii", "replace")
    return ""


async def run_device(
    device: SimDevice,
    host: str,
    port: int,
    interval: float,
    count: int,
    stats: Stats,
    deadline: float,
    timeout: float = 10.0,
) -> None:
    """Send ``count`` messages (0: until ``deadline``), one every ``interval`` seconds."""
    sent = 0
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    await asyncio.sleep(device.patient.rng.uniform(0, interval))
    while (count == 0 or sent < count) and time.monotonic() < deadline:
        started = time.monotonic()
        device.patient.step()
        control, when = device.next_control_id(), hl7_now()
        build = monitor_message if device.kind == "monitor" else ventilator_message
        payload = START + build(device, control, when) + END
        attempts = 0
        while time.monotonic() < deadline + timeout:
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection(host, port)
                assert reader is not None
                t0 = time.perf_counter()
                writer.write(payload)
                await writer.drain()
                frame = await asyncio.wait_for(read_ack(reader), timeout)
                stats.latencies.append(time.perf_counter() - t0)
                code = ack_code(frame)
                stats.sent += 1
                stats.resent += attempts > 0
                if code in ("AA", "CA"):
                    stats.acked += 1
                else:
                    stats.negative += 1
                break
            except (TimeoutError, OSError, asyncio.IncompleteReadError):
                attempts += 1
                if writer is not None:
                    writer.close()
                reader = writer = None
                await asyncio.sleep(min(5.0, 0.2 * attempts))
        sent += 1
        await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))
    if writer is not None:
        writer.close()


def _base36(n: int) -> str:
    digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out


async def simulate(
    host: str,
    port: int,
    monitors: int,
    ventilators: int,
    interval: float,
    count: int,
    duration: float,
    seed: int = 2020,
    first_ipp: int = 1,
) -> Stats:
    """Run the devices until each sent ``count`` messages or ``duration`` seconds passed."""
    stats = Stats()
    deadline = time.monotonic() + (duration if duration > 0 else 10**9)
    devices = make_devices(monitors, ventilators, seed, first_ipp)
    run = _base36(int(time.time()))
    for device in devices:
        device.run = run
    await asyncio.gather(
        *(run_device(d, host, port, interval, count, stats, deadline) for d in devices)
    )
    return stats
