"""MQTT ingestion from home devices, through the platform's broker (Mosquitto).

The gateway subscribes with QoS 1 in a persistent session (clean session off, a fixed
client id), so the broker keeps what devices publish while the gateway is down. Each
message is checked (``home.py``) and committed to the journal before its PUBACK is
sent (paho's manual acknowledgment); the mapper then writes the Observations. A payload
that is not the documented JSON is journaled as rejected and acknowledged, since the
broker would otherwise deliver it again forever; its error is kept for the operator.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import paho.mqtt.client as mqtt

from hygie.devices.errors import PayloadRejected
from hygie.devices.fhir import short_hash
from hygie.devices.home import parse_payload
from hygie.devices.journal import Incoming, Journal
from hygie.devices.model import DevicesSettings

log = logging.getLogger("hygie.devices")


def incoming_for(topic: str, payload: bytes, settings: DevicesSettings) -> Incoming:
    """The journal entry of one MQTT message (checked, or marked rejected)."""
    pattern, parts = settings.mqtt_topic.split("/"), topic.split("/")
    slot = pattern.index("+") if "+" in pattern else -1
    topic_device = parts[slot] if slot >= 0 and len(parts) == len(pattern) else ""
    if len(payload) > settings.max_payload_bytes:
        error: dict[str, object] | None = {
            "text": f"payload larger than {settings.max_payload_bytes} bytes",
            "path": "",
        }
        return Incoming(
            "mqtt",
            f"mqtt:{topic_device[:100]}",
            f"invalid-{short_hash(topic, str(len(payload)))}",
            "utf-8",
            payload[:1024],
            error,
        )
    try:
        home = parse_payload(payload, settings.patient_system)
        if home.device_id != topic_device:
            raise PayloadRejected(
                f"does not match the topic's device {topic_device!r}", "device.id"
            )
    except PayloadRejected as exc:
        error = {"text": str(exc), "path": exc.path}
        return Incoming(
            "mqtt",
            f"mqtt:{topic_device[:100]}",
            f"invalid-{short_hash(topic, payload.hex())}",
            "utf-8",
            payload,
            error,
        )
    return Incoming("mqtt", f"mqtt:{home.device_id}", home.message_id, "utf-8", payload)


class MqttIngest:
    """Subscribes to the home-device topic; see the module docstring."""

    def __init__(
        self,
        journal: Journal,
        settings: DevicesSettings,
        wake_mapper: Callable[[], None],
        on_subscribed: Callable[[], None] | None = None,
    ) -> None:
        self.journal = journal
        self.on_subscribed = on_subscribed
        self.settings = settings
        self.wake_mapper = wake_mapper
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=settings.mqtt_client_id,
            clean_session=False,
            protocol=mqtt.MQTTv311,
            manual_ack=True,
        )
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.received = 0

    def start(self) -> None:
        self.client.connect_async(self.settings.mqtt_host, self.settings.mqtt_port, keepalive=30)
        self.client.loop_start()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(
        self,
        client: mqtt.Client,
        _userdata: object,
        _flags: object,
        reason: object,
        _properties: object,
    ) -> None:
        client.subscribe(self.settings.mqtt_topic, qos=1)

    def _on_subscribe(
        self,
        _client: mqtt.Client,
        _userdata: object,
        _mid: int,
        _reasons: object,
        _properties: object,
    ) -> None:
        if self.on_subscribed is not None:
            self.on_subscribed()

    def _on_message(self, client: mqtt.Client, _userdata: object, msg: mqtt.MQTTMessage) -> None:
        incoming = incoming_for(msg.topic, msg.payload, self.settings)
        try:
            self.journal.append([incoming])
        except Exception:
            log.exception("MQTT message not journaled; the broker will deliver it again")
            return
        self.received += 1
        client.ack(msg.mid, msg.qos)
        if incoming.error is None:
            self.wake_mapper()
