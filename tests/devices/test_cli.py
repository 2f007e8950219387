"""``hygie devices simulate`` against a running gateway, and ``hygie devices status``."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from click.testing import CliRunner
from sqlalchemy import select

from hygie.cli import main
from hygie.devices.journal import open_journal
from hygie.devices.simulator import make_devices, monitor_message, ventilator_message
from hygie.devices.tables import bed
from hygie.platform import Platform
from hygie.store.interactions import StoreContext
from tests.devices.conftest import Gateway


def test_simulated_icu_reaches_the_store(
    gateway: Gateway, platform: Platform, store: StoreContext
) -> None:
    runner = CliRunner()
    result = runner.invoke(
        main,
        [
            "devices",
            "simulate",
            "--port",
            str(gateway.port),
            "--monitors",
            "4",
            "--ventilators",
            "2",
            "--interval",
            "0.1",
            "--count",
            "3",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "sent 18, acknowledged 18, negative 0" in result.output
    assert open_journal(platform).counts() == {"stored": 18}
    page = store.repository.search("Observation", [("_count", "0"), ("_total", "accurate")])
    assert page.total == 4 * 3 * 10 + 2 * 3 * 6
    env = {
        "HYGIE_DATABASE_URL": platform.settings.database_url,
        "HYGIE_VAR_DIR": str(platform.settings.var_dir),
    }
    status = runner.invoke(main, ["devices", "status"], env={**os.environ, **env})
    assert status.exit_code == 0
    assert "stored: 18" in status.output and "pending: 0" in status.output
    purged = runner.invoke(main, ["devices", "purge", "--days", "0"], env={**os.environ, **env})
    assert purged.exit_code == 0 and "removed 18 messages" in purged.output
    assert open_journal(platform).counts() == {}


def test_simulator_messages_follow_pcd01() -> None:
    devices = make_devices(30, 5)
    monitors = [d for d in devices if d.kind == "monitor"]
    assert len(monitors) == 30 and len(devices) == 35
    # the demo territory's ICU beds first, then the extra beds opened in the crisis
    assert monitors[0].facility == "ch-jeanne-sorel" and monitors[0].room == "101"
    assert monitors[16].facility == "ch-deux-rives"
    assert monitors[-1].unit == "icu-ext"
    text = monitor_message(monitors[0], "C1", "20260321081500+0100").decode()
    segments = text.split("\r")
    assert [s[:3] for s in segments[:4]] == ["MSH", "PID", "PV1", "OBR"]
    assert sum(1 for s in segments if s.startswith("OBX") and s.split("|")[11] == "R") == 10
    assert "IHE_PCD_001" in segments[0]
    vent = ventilator_message(devices[1], "C2", "20260321081500+0100").decode()
    assert "MDC_VENT_PRESS_AWAY_END_EXP_POS" in vent


def test_simulator_runs_as_its_own_process_with_40_monitors(
    gateway: Gateway, platform: Platform, store: StoreContext
) -> None:
    """``hygie devices simulate --monitors 40`` as an operator runs it: another process."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "hygie",
            "devices",
            "simulate",
            "--port",
            str(gateway.port),
            "--monitors",
            "40",
            "--interval",
            "0.5",
            "--count",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    # 40 monitors and, by default, a ventilator on each of the first 10 beds
    assert "sent 50, acknowledged 50, negative 0" in done.stdout
    journal = open_journal(platform)
    assert journal.counts() == {"stored": 50}
    page = store.repository.search("Observation", [("_count", "0"), ("_total", "accurate")])
    assert page.total == 40 * 10 + 10 * 6
    # every bed of the demo territory's two ICUs, then the beds opened for the crisis
    with platform.engine.connect() as conn:
        units = [r.unit for r in conn.execute(select(bed.c.unit))]
    assert sorted(set(units)) == ["icu", "icu-ext"] and len(units) == 40


def test_the_mapper_reads_and_writes_through_the_security_layer(platform: Platform) -> None:
    """``hygie devices listen`` maps in a process of its own: that process seals what it
    writes and opens what the store sealed (a patient registered before), as the
    ``hygie`` command that started it does."""
    from hygie.security.encryption import MAGIC
    from hygie.store.schema import resource
    from hygie.store.server import open_store

    repository = open_store(platform).repository
    repository.create({"resourceType": "Patient", "name": [{"family": "LIT-UN"}],
                       "identifier": [{"system": "https://hygie.example/fhir/sid/ipp",
                                       "value": "0000000001"}]}, res_id="bed-one")
    gateway = Gateway(platform)
    gateway.start()
    try:
        result = CliRunner().invoke(main, ["devices", "simulate", "--port", str(gateway.port),
                                           "--monitors", "2", "--ventilators", "0",
                                           "--interval", "0.1", "--count", "1"])
        assert "sent 2, acknowledged 2, negative 0" in result.output, result.output
    finally:
        gateway.stop()
    assert open_journal(platform).counts() == {"stored": 2}, gateway.log.read_text()
    with platform.engine.connect() as conn:
        bodies = conn.execute(select(resource.c.res_type, resource.c.body)).all()
    assert {t for t, _b in bodies} >= {"Patient", "Observation", "Device"}
    assert all(bytes(b).startswith(MAGIC) for _t, b in bodies), "a body was written in clear"
    # the registered patient was found (sealed) for the first bed; the second is provisional
    first = repository.search("Observation", [("subject", "Patient/bed-one"), ("_count", "0"),
                                              ("_total", "accurate")])
    assert first.total and first.total > 0


def test_a_restarted_simulator_is_not_heard_as_repeating_itself(
    gateway: Gateway, platform: Platform
) -> None:
    """Each run numbers its messages from 1 again; their MSH-10 still differ from the
    last run's, which the gateway would store once as resent messages."""
    args = ["devices", "simulate", "--port", str(gateway.port), "--monitors", "2",
            "--ventilators", "0", "--interval", "0.1", "--count", "2"]
    for _run in range(2):
        result = CliRunner().invoke(main, args)
        assert "sent 4, acknowledged 4, negative 0" in result.output, result.output
        time.sleep(1.1)  # a run is told apart from the one before by its start second
    assert open_journal(platform).counts() == {"stored": 8}
