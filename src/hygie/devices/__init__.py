"""Biomedical gateway: HL7 v2 over MLLP (IHE PCD-01) and MQTT into FHIR, and the ICU board.

See docs/devices.md. Public names below; the modules hold the parts (``receipt``,
``pcd01``, ``fhir``, ``journal``, ``ingest``, ``mllp``, ``mqtt``, ``gateway``).
"""

from hygie.devices.errors import DevicesError, MessageRejected, PayloadRejected
from hygie.devices.model import DevicesSettings, Header, Report

__all__ = [
    "DevicesError",
    "DevicesSettings",
    "Header",
    "MessageRejected",
    "PayloadRejected",
    "Report",
]
