"""Phone simulator: virtual phones in a synthetic town, talking to the real HTTP API.

Each phone belongs to a household, a workplace and a transport line. Day after day,
phones sit at home, commute, work at a desk, sometimes shop, and each minute every
pair within radio range exchanges a HELLO whose RSSI follows a log-distance path
loss with fading noise. Phones register through the captcha, ask their exposure
status every evening, and some test positive: they get a submission code from a
health professional and upload what they heard over the report window.

The ground truth is what the scoring means to detect: a phone is a *true close
contact* when it spent at least 15 minutes within 2 metres of a positive phone over
that phone's report window. The result compares it with who was told "at risk".

The server runs in-process with uvicorn on a loopback port; its clock is the
simulation's, so two weeks pass in seconds. Only the registration's captcha answer
is read from the database, as a person would read the picture.
"""

from __future__ import annotations

import contextlib
import math
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import sqlalchemy as sa
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount

from hygie.config import load_settings
from hygie.platform import open_platform
from hygie.tracing import api
from hygie.tracing import tables as t
from hygie.tracing.engine import TracingService
from hygie.tracing.epochs import SERVICE_START_UNIX, ntp_from_unix
from hygie.tracing.keystore import FileKeyStore
from hygie.tracing.model import TracingSettings
from hygie.tracing.phone import PhoneApp

SLOT_MIN = 5
SLOTS_PER_DAY = 24 * 60 // SLOT_MIN


@dataclass(frozen=True)
class SimulationConfig:
    """Size and behaviour of the simulated town (seeded: same config, same run)."""

    n_phones: int = 300
    days: int = 10
    positive_share: float = 0.05
    seed: int = 7
    #: Largest distance (m) at which a HELLO is received.
    hello_range_m: float = 6.0
    #: Close contact: at least this many minutes within ``close_m`` metres.
    close_m: float = 2.0
    close_minutes: int = 15
    #: Days of received HELLOs a positive phone uploads.
    report_window_days: int = 7
    #: Share of phones that stop by a shop after work, each day.
    shop_share: float = 0.3


@dataclass
class SimulationResult:
    n_phones: int
    positives: int
    hellos: int
    true_contacts: set[int]
    notified: set[int]
    requests: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def true_positive(self) -> int:
        return len(self.true_contacts & self.notified)

    @property
    def precision(self) -> float:
        return self.true_positive / len(self.notified) if self.notified else 1.0

    @property
    def recall(self) -> float:
        return self.true_positive / len(self.true_contacts) if self.true_contacts else 1.0

    def summary(self) -> str:
        reqs = ", ".join(f"{k} {v}" for k, v in sorted(self.requests.items()))
        return (f"phones: {self.n_phones}  positives: {self.positives}  HELLOs: {self.hellos}\n"
                f"true close contacts: {len(self.true_contacts)}  notified: {len(self.notified)}"
                f"  correctly notified: {self.true_positive}\n"
                f"precision: {self.precision:.3f}  recall: {self.recall:.3f}\n"
                f"HTTP requests: {reqs}  ({self.seconds:.1f} s)")


class _Clock:
    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serve(service: TracingService, platform: Any) -> Iterator[str]:
    """Serve the tracing routes on a loopback port; yields the base URL."""
    app = Starlette(routes=[Mount("/tracing", routes=api.routes())])
    app.state.platform = platform
    platform.parts["tracing"] = service
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error",
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the simulator's server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}/tracing"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


class Town:
    """Where each phone is, slot by slot: homes, workplaces, transport lines, shops."""

    def __init__(self, cfg: SimulationConfig, rng: np.random.Generator) -> None:
        n = cfg.n_phones
        self.cfg, self.rng = cfg, rng
        self.home = rng.integers(0, max(1, int(n / 2.4)), n)
        self.work = rng.integers(0, max(1, n // 10), n)
        self.line = rng.integers(0, max(1, n // 20), n)
        self.n_shops = max(1, n // 40)

    def day_places(self) -> tuple[list[list[tuple[str, int]]], np.ndarray]:
        """For each slot, each phone's place key; and desk positions for the day."""
        n = self.cfg.n_phones
        shops = np.where(self.rng.random(n) < self.cfg.shop_share,
                         self.rng.integers(0, self.n_shops, n), -1)
        plan: list[list[tuple[str, int]]] = []
        for slot in range(SLOTS_PER_DAY):
            hour = slot * SLOT_MIN / 60
            if 8 <= hour < 8.5 or 17 <= hour < 17.5:
                plan.append([("line", int(x)) for x in self.line])
            elif 8.5 <= hour < 17:
                plan.append([("work", int(x)) for x in self.work])
            elif 17.5 <= hour < 18:
                plan.append([("shop", int(s)) if s >= 0 else ("home", int(h))
                             for s, h in zip(shops, self.home, strict=True)])
            else:
                plan.append([("home", int(x)) for x in self.home])
        return plan, self.rng.random((n, 2))

    def positions(self, kind: str, members: np.ndarray, desks: np.ndarray) -> np.ndarray:
        """Positions (m) of the phones in one place during one slot."""
        k = len(members)
        if kind == "work":
            side = 3.0 * math.sqrt(k)  # about 9 m² per desk
            return desks[members] * side + self.rng.normal(0, 0.3, (k, 2))
        if kind == "home":
            return self.rng.random((k, 2)) * 6.0
        if kind == "line":
            return self.rng.random((k, 2)) * np.array([18.0, 2.5])
        return self.rng.random((k, 2)) * 12.0


def _rssi(rng: np.random.Generator, d: np.ndarray) -> np.ndarray:
    """Calibrated RSSI (dBm) at distance ``d`` (m): -60 at 1 m, path loss exponent 2."""
    return np.clip(np.round(-60 - 20 * np.log10(np.maximum(d, 0.3)) + rng.normal(0, 2.0, d.shape)),
                   -120, -10).astype(int)


def run_simulation(cfg: SimulationConfig, workdir: Path) -> SimulationResult:
    """Run the whole simulation against a fresh server whose files live in ``workdir``."""
    started = time.perf_counter()
    rng = np.random.default_rng(cfg.seed)
    platform = open_platform(load_settings(database_url=f"sqlite:///{workdir / 'sim.db'}",
                                           var_dir=workdir))
    clock = _Clock(float(SERVICE_START_UNIX + 400 * 86400))
    limits = TracingSettings(captcha_per_window=10 * cfg.n_phones + 10,
                             registrations_per_window=10 * cfg.n_phones + 10)
    service = TracingService(platform.engine, FileKeyStore(workdir / "keys.json"), limits, clock)
    service.create_tables()
    town = Town(cfg, rng)
    phones = [PhoneApp() for _ in range(cfg.n_phones)]
    n_pos = max(1, round(cfg.positive_share * cfg.n_phones))
    positive_ids = rng.choice(cfg.n_phones, n_pos, replace=False)
    declare_day = {int(p): int(rng.integers(min(3, cfg.days - 1), cfg.days)) for p in positive_ids}
    close_minutes: dict[tuple[int, int], dict[int, int]] = defaultdict(lambda: defaultdict(int))
    notified: set[int] = set()
    requests: dict[str, int] = defaultdict(int)
    hellos = 0
    day0 = clock.now

    with serve(service, platform) as base, httpx.Client(base_url=base, timeout=30) as http:
        def call(method: str, path: str, **kw: Any) -> httpx.Response:
            name = "captcha-media" if path.startswith("/api/captcha/") else path.rsplit("/")[-1]
            requests[name] += 1
            return http.request(method, path, **kw)

        server_key = call("GET", "/api/config").json()["serverPublicKey"]
        for phone in phones:
            cid = call("POST", "/api/captcha", json={"type": "image"}).json()["id"]
            call("GET", f"/api/captcha/{cid}/image").raise_for_status()
            with platform.engine.connect() as conn:
                answer = conn.execute(sa.select(t.captcha.c.answer)
                                      .where(t.captcha.c.id == cid)).scalar_one()
            r = call("POST", "/api/register", json={"captcha": answer.lower(), "captchaId": cid,
                                                     "clientPublicECDHKey": phone.public_key()})
            r.raise_for_status()
            phone.complete_registration(server_key, r.json()["tuples"])

        for day in range(cfg.days):
            plan, desks = town.day_places()
            day_start = day0 + day * 86400
            for slot in range(SLOTS_PER_DAY):
                slot_start = day_start + slot * SLOT_MIN * 60
                clock.now = slot_start
                groups: dict[tuple[str, int], list[int]] = defaultdict(list)
                for pid, place in enumerate(plan[slot]):
                    groups[place].append(pid)
                for (kind, _), members in groups.items():
                    if len(members) < 2:
                        continue
                    m = np.array(members)
                    pos = town.positions(kind, m, desks)
                    dist = np.sqrt(((pos[:, None, :] - pos[None, :, :]) ** 2).sum(-1))
                    ii, jj = np.nonzero(np.triu(dist <= cfg.hello_range_m, 1))
                    for a, b in zip(ii.tolist(), jj.tolist(), strict=True):
                        pa, pb, d = int(m[a]), int(m[b]), float(dist[a, b])
                        if d <= cfg.close_m:
                            close_minutes[(min(pa, pb), max(pa, pb))][day] += SLOT_MIN
                        rssi = _rssi(rng, np.full(2 * SLOT_MIN, d))
                        for minute in range(SLOT_MIN):
                            ntp = ntp_from_unix(slot_start + minute * 60 + int(rng.integers(0, 50)))
                            phones[pb].hear(phones[pa].hello(ntp), ntp + 1, int(rssi[2 * minute]))
                            phones[pa].hear(phones[pb].hello(ntp), ntp + 1,
                                            int(rssi[2 * minute + 1]))
                            hellos += 2
                if slot == 19 * 60 // SLOT_MIN:
                    _declare(cfg, day, day_start, phones, declare_day, call, clock)
                if slot == 20 * 60 // SLOT_MIN:
                    clock.now = slot_start + 30
                    now_ntp = ntp_from_unix(clock.now)
                    for pid, phone in enumerate(phones):
                        r = call("POST", "/api/status", json=phone.status_request(now_ntp))
                        r.raise_for_status()
                        body = r.json()
                        if "tuples" in body:
                            phone.add_tuples(body["tuples"])
                        if body["atRisk"]:
                            notified.add(pid)
                    _forget_old(phones, ntp_from_unix(day_start - cfg.report_window_days * 86400))

    truth: set[int] = set()
    for p, dday in declare_day.items():
        window = range(max(0, dday - cfg.report_window_days), dday + 1)
        for (a, b), per_day in close_minutes.items():
            if p in (a, b) and sum(per_day.get(d, 0) for d in window) >= cfg.close_minutes:
                truth.add(b if a == p else a)
    positives = set(declare_day)
    platform.close()
    return SimulationResult(n_phones=cfg.n_phones, positives=len(positives), hellos=hellos,
                            true_contacts=truth - positives, notified=notified - positives,
                            requests=dict(requests), seconds=time.perf_counter() - started)


def _declare(cfg: SimulationConfig, day: int, day_start: float, phones: list[PhoneApp],
             declare_day: dict[int, int], call: Any, clock: _Clock) -> None:
    """Positive phones of the day get a code and upload their report window."""
    todays = [p for p, d in declare_day.items() if d == day]
    for pid in todays:
        code = call("POST", "/api/staff/codes", json={"kind": "short"}).json()["code"]
        since = ntp_from_unix(day_start - cfg.report_window_days * 86400)
        call("POST", "/api/report", json=phones[pid].report(code, since)).raise_for_status()
    if todays:
        call("POST", "/api/staff/process").raise_for_status()


def _forget_old(phones: list[PhoneApp], before_ntp: int) -> None:
    """Phones keep only the HELLOs of the report window (bounded memory)."""
    for phone in phones:
        for key in list(phone.received):
            kept = [h for h in phone.received[key] if h[0] >= before_ntp]
            if kept:
                phone.received[key] = kept
            else:
                del phone.received[key]
