"""Home devices over MQTT, through the real Mosquitto broker on 127.0.0.1:1883.

Each test uses its own topic and client id, so it neither sees nor leaves anything
for other runs; the gateway's persistent session is removed afterwards.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
import pytest

from hygie.devices.journal import open_journal
from hygie.platform import Platform
from hygie.store.interactions import StoreContext
from tests.devices.conftest import Gateway

BROKER = ("127.0.0.1", 1883)


def broker_problem() -> str | None:
    import socket

    try:
        socket.create_connection(BROKER, timeout=2).close()
    except OSError as exc:
        return f"Mosquitto not reachable on {BROKER[0]}:{BROKER[1]} ({exc})"
    return None


@pytest.fixture
def mqtt_gateway(platform: Platform) -> Iterator[tuple[Gateway, str]]:
    problem = broker_problem()
    if problem:
        pytest.skip(problem + "; start it with: mosquitto -d")
    run = uuid.uuid4().hex[:12]
    prefix = f"hygie-test-{run}"
    client_id = f"hygie-test-gw-{run}"
    gateway = Gateway(
        platform,
        mqtt={"mqtt_topic": f"{prefix}/devices/+/observations", "mqtt_client_id": client_id},
    )
    try:
        yield gateway, prefix
    finally:
        gateway.stop()
        cleanup = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True
        )
        cleanup.connect(*BROKER)
        cleanup.loop_start()
        time.sleep(0.2)
        cleanup.disconnect()
        cleanup.loop_stop()


def start_and_wait_subscribed(gateway: Gateway) -> None:
    gateway.start()
    ready = Path(gateway.settings.var_dir) / "devices" / "mqtt.subscribed"
    deadline = time.monotonic() + 20
    while not ready.exists():
        assert time.monotonic() < deadline, Path(gateway.log).read_text()
        time.sleep(0.05)


def publish(prefix: str, device: str, payload: dict | bytes) -> None:
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=f"hygie-test-dev-{uuid.uuid4().hex[:8]}"
    )
    client.connect(*BROKER)
    client.loop_start()
    data = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    info = client.publish(f"{prefix}/devices/{device}/observations", data, qos=1)
    info.wait_for_publish(10)
    client.disconnect()
    client.loop_stop()


def reading(message_id: str, device: str, kind: str, ipp: str, measurements: list) -> dict:
    return {
        "id": message_id,
        "device": {"id": device, "type": kind},
        "patient": {"value": ipp},
        "time": "2026-03-21T08:15:00+01:00",
        "measurements": measurements,
    }


def wait_for(predicate, timeout: float = 30) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_home_devices_land_on_the_right_patient(
    mqtt_gateway: tuple[Gateway, str], platform: Platform, store: StoreContext
) -> None:
    gateway, prefix = mqtt_gateway
    repo = store.repository
    ipp = "https://hygie.example/fhir/sid/ipp"
    alice = repo.create(
        {"resourceType": "Patient", "identifier": [{"system": ipp, "value": "0000000101"}]}
    ).stored.res_id
    bob = repo.create(
        {"resourceType": "Patient", "identifier": [{"system": ipp, "value": "0000000102"}]}
    ).stored.res_id
    start_and_wait_subscribed(gateway)
    publish(
        prefix,
        "OXY-1",
        reading(
            "m-1",
            "OXY-1",
            "pulse-oximeter",
            "0000000101",
            [{"metric": "spo2", "value": 93, "unit": "%"}, {"metric": "pulse", "value": 88}],
        ),
    )
    publish(
        prefix,
        "BP-7",
        reading(
            "m-2",
            "BP-7",
            "blood-pressure",
            "0000000102",
            [
                {"metric": "nibp_sys", "value": 151, "unit": "mm[Hg]"},
                {"metric": "nibp_dia", "value": 92, "unit": "mm[Hg]"},
            ],
        ),
    )
    publish(
        prefix,
        "THERMO-3",
        reading(
            "m-3",
            "THERMO-3",
            "thermometer",
            "0000000101",
            [{"metric": "temp", "value": 101.3, "unit": "[degF]"}],
        ),
    )
    # QoS 1 may deliver twice: the same id again is stored once
    publish(
        prefix,
        "OXY-1",
        reading(
            "m-1",
            "OXY-1",
            "pulse-oximeter",
            "0000000101",
            [{"metric": "spo2", "value": 93, "unit": "%"}, {"metric": "pulse", "value": 88}],
        ),
    )
    publish(prefix, "OXY-1", b"{not json")
    publish(
        prefix,
        "OXY-1",
        reading("m-4", "OXY-1", "thermometer", "0000000101", [{"metric": "spo2", "value": 93}]),
    )
    journal = open_journal(platform)
    wait_for(lambda: journal.counts() == {"stored": 3, "rejected": 2})

    def observations(patient: str) -> list[dict]:
        page = repo.search("Observation", [("subject", f"Patient/{patient}"), ("_count", "50")])
        return [m.resource for m in page.matches]

    alice_obs = observations(alice)
    assert sorted(o["code"]["coding"][1]["code"] for o in alice_obs) == [
        "2708-6",
        "8310-5",
        "8889-8",
    ]
    temp = next(o for o in alice_obs if o["code"]["coding"][0]["code"] == "150364")
    assert temp["valueQuantity"]["code"] == "[degF]"
    assert temp["device"]["reference"] == "Device/home-thermo-3"
    assert temp["effectiveDateTime"] == "2026-03-21T07:15:00Z"
    assert sorted(o["valueQuantity"]["value"] for o in observations(bob)) == [92, 151]
    from sqlalchemy import func, select

    from hygie.devices.tables import bed

    with platform.engine.connect() as conn:  # home devices stay off the ICU board
        assert conn.execute(select(func.count()).select_from(bed)).scalar_one() == 0
    device = repo.read("Device", "home-oxy-1").resource
    assert device["patient"] == {"reference": f"Patient/{alice}"}
    assert device["type"]["coding"][0]["code"] == "528388"


def test_messages_published_while_the_gateway_is_down_arrive(
    mqtt_gateway: tuple[Gateway, str], platform: Platform, store: StoreContext
) -> None:
    gateway, prefix = mqtt_gateway
    start_and_wait_subscribed(gateway)  # creates the persistent session
    gateway.stop()
    publish(
        prefix,
        "OXY-9",
        reading(
            "late-1", "OXY-9", "pulse-oximeter", "0000000555", [{"metric": "spo2", "value": 97}]
        ),
    )
    start_and_wait_subscribed(gateway)
    journal = open_journal(platform)
    wait_for(lambda: journal.counts() == {"stored": 1})
    [patient] = [m.resource for m in store.repository.search("Patient", []).matches]
    assert patient["meta"]["tag"][0]["code"] == "provisional"
