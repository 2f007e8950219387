"""A home pulse oximeter's reading, published over MQTT to the real Mosquitto broker and
stored by the devices gateway (``hygie devices listen`` as its own process), counts as
an answer and raises an alert."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest

from hygie.followup.model import AlertKind, Level
from tests.followup.conftest import Harness, paris_ms

BROKER = ("127.0.0.1", 1883)
IPP = "https://hygie.example/fhir/sid/ipp"


def _broker_problem() -> str | None:
    try:
        socket.create_connection(BROKER, timeout=2).close()
    except OSError as exc:
        return f"Mosquitto not reachable on {BROKER[0]}:{BROKER[1]} ({exc})"
    return None


def _start_gateway(settings: Any, topic: str, client_id: str) -> subprocess.Popen[bytes]:
    var = Path(settings.var_dir)
    (var / "devices").mkdir(parents=True, exist_ok=True)
    config = var / "devices.toml"
    config.write_text(
        f'[hygie]\ndevices_mqtt_topic = "{topic}"\ndevices_mqtt_client_id = "{client_id}"\n'
    )
    env = {
        **os.environ,
        "HYGIE_DATABASE_URL": settings.database_url,
        "HYGIE_VAR_DIR": str(var),
        "HYGIE_CONFIG": str(config),
    }
    with (var / "gateway.log").open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "hygie", "devices", "listen", "--port", "0"],
            env=env,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    ready = var / "devices" / "mqtt.subscribed"
    deadline = time.monotonic() + 60
    while not ready.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("gateway did not start: " + (var / "gateway.log").read_text())
        time.sleep(0.05)
    return process


def test_an_oximeter_reading_answers_and_alerts(harness: Harness, enroll: Any) -> None:
    problem = _broker_problem()
    if problem:
        pytest.skip(problem + "; start it with: mosquitto -d")
    import paho.mqtt.client as mqtt

    phone = "+33612000071"
    e = enroll("oxymetre", phone)
    repo = harness.platform.parts["store"].repository
    patient = repo.read("Patient", "oxymetre").resource
    repo.update(
        "Patient", "oxymetre", {**patient, "identifier": [{"system": IPP, "value": "0000777001"}]}
    )
    harness.service.read_devices()  # the cursor starts here
    harness.now = paris_ms("2026-03-02 08:00")
    harness.pump(lambda: len(harness.texts_to(phone)) == 2)
    run = uuid.uuid4().hex[:12]
    prefix, client_id = f"hygie-fu-{run}", f"hygie-fu-gw-{run}"
    gateway = _start_gateway(
        harness.platform.settings, f"{prefix}/devices/+/observations", client_id
    )
    try:
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"fu-dev-{run}")
        client.connect(*BROKER)
        client.loop_start()
        payload = {
            "id": f"reading-{run}",
            "device": {"id": "OXY-777", "type": "pulse-oximeter"},
            "patient": {"system": IPP, "value": "0000777001"},
            "time": "2026-03-02T08:05:00+01:00",
            "measurements": [
                {"metric": "spo2", "value": 90, "unit": "%"},
                {"metric": "pulse", "value": 88, "unit": "/min"},
            ],
        }
        client.publish(
            f"{prefix}/devices/OXY-777/observations", orjson.dumps(payload), qos=1
        ).wait_for_publish(10)
        client.disconnect()
        client.loop_stop()
        deadline = time.monotonic() + 60
        while harness.service.read_devices() == 0:
            assert time.monotonic() < deadline, "the gateway did not store the reading"
            time.sleep(0.2)
    finally:
        gateway.send_signal(signal.SIGTERM)
        gateway.wait(20)
        cleanup = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True
        )
        cleanup.connect(*BROKER)
        cleanup.disconnect()
    (alert,) = harness.service.alerts(enrollment_id=e.id)
    assert alert.kind is AlertKind.DEVICE and alert.level is Level.EMERGENCY
    assert any("appareil : 90 %" in r for r in alert.reasons)
    # Saturation and pulse came from the device: after temperature and breathlessness,
    # the next question is the last one.
    harness.answer_and_wait(phone, "37,1", 3)
    assert "toux" in harness.answer_and_wait(phone, "non", 4)[-1]
    answers = harness.service.sessions(e.id)[0].answers
    assert (answers["spo2"], answers["pulse"]) == (90.0, 88.0)
