"""The app side of ROBERT: what a phone computes (used by the simulator, tests, bench).

A phone keeps its P-256 key only long enough to derive K_A and K_A_enc, opens the
sealed tuples it received, broadcasts one HELLO per second-ish with the EBID of the
current epoch, and authenticates its requests with K_A (ROBERT v1.1, sections 4-8).
"""

from __future__ import annotations

import base64
import struct
from dataclasses import dataclass, field

import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from hygie.tracing.epochs import epoch_of_ntp
from hygie.tracing.protocol import (
    SALT_DELETE_HISTORY,
    SALT_STATUS,
    SALT_UNREGISTER,
    derive_user_keys,
    hello_mac,
    request_mac,
    unseal,
)


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


@dataclass
class PhoneApp:
    """One installed app: its keys, its tuples, and what it received."""

    private_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    ka: bytes = b""
    kenc: bytes = b""
    tuples: dict[int, tuple[bytes, int]] = field(default_factory=dict)
    #: Received HELLOs grouped by (EBID, ECC): [(time_rx, time16, mac, rssi)].
    received: dict[tuple[bytes, int], list[tuple[int, int, bytes, int]]] = field(
        default_factory=dict)

    def public_key(self) -> str:
        """The app's public key as the registration request carries it (SPKI, base64)."""
        return b64(self.private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))

    def complete_registration(self, server_public_key: str, tuples: str) -> None:
        """Derive K_A and K_A_enc, then forget the private key's use and open the tuples."""
        server = serialization.load_der_public_key(base64.b64decode(server_public_key))
        assert isinstance(server, ec.EllipticCurvePublicKey)
        self.ka, self.kenc = derive_user_keys(self.private_key.exchange(ec.ECDH(), server))
        self.add_tuples(tuples)

    def add_tuples(self, sealed: str) -> None:
        for item in orjson.loads(unseal(self.kenc, base64.b64decode(sealed))):
            key = item["key"]
            self.tuples[int(item["epochId"])] = (base64.b64decode(key["ebid"]),
                                                 base64.b64decode(key["ecc"])[0])

    def hello(self, ntp_time: int) -> tuple[int, bytes, int, bytes]:
        """(ECC, EBID, time16, MAC) broadcast at this time."""
        ebid, ecc = self.tuples[epoch_of_ntp(ntp_time)]
        t16 = ntp_time & 0xFFFF
        return ecc, ebid, t16, hello_mac(self.ka, ecc, ebid, t16)

    def hear(self, hello: tuple[int, bytes, int, bytes], ntp_time: int, rssi: int) -> None:
        ecc, ebid, t16, mac = hello
        self.received.setdefault((ebid, ecc), []).append((ntp_time, t16, mac, rssi))

    def _authenticated(self, salt: int, ntp_time: int) -> dict[str, object]:
        epoch = epoch_of_ntp(ntp_time)
        ebid = self.tuples[epoch][0]
        return {"ebid": b64(ebid), "epochId": epoch, "time": b64(struct.pack(">I", ntp_time)),
                "mac": b64(request_mac(self.ka, salt, ebid, epoch, ntp_time))}

    def status_request(self, ntp_time: int) -> dict[str, object]:
        return self._authenticated(SALT_STATUS, ntp_time)

    def unregister_request(self, ntp_time: int) -> dict[str, object]:
        return self._authenticated(SALT_UNREGISTER, ntp_time)

    def delete_history_request(self, ntp_time: int) -> dict[str, object]:
        return self._authenticated(SALT_DELETE_HISTORY, ntp_time)

    def report(self, token: str, since_ntp: int = 0) -> dict[str, object]:
        """The positive declaration: every contact heard since ``since_ntp``."""
        contacts = []
        for (ebid, ecc), hellos in self.received.items():
            kept = [h for h in hellos if h[0] >= since_ntp]
            if kept:
                contacts.append({"ebid": b64(ebid), "ecc": b64(bytes((ecc,))), "ids": [
                    {"timeCollectedOnDevice": t, "timeFromHelloMessage": t16,
                     "mac": b64(mac), "rssiCalibrated": rssi} for t, t16, mac, rssi in kept]})
        return {"token": token, "contacts": contacts}
