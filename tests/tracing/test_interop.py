"""GAEN and DP-3T cryptography against their published vectors."""

from __future__ import annotations

from typing import Any

from hygie.tracing.interop import (
    aem_key,
    decrypt_metadata,
    encrypt_metadata,
    ephids,
    interval_number,
    next_day_key,
    rolling_proximity_identifier,
    rpi_key,
    rpis_for_day,
)


def test_gaen_keys(vectors: dict[str, Any]) -> None:
    g = vectors["gaen"]
    tek = bytes.fromhex(g["tek"])
    assert interval_number(g["key_generation_unix_seconds"]) == g["en_interval_number"]
    assert rpi_key(tek).hex() == g["rpik"]
    assert aem_key(tek).hex() == g["aemk"]


def test_gaen_advertised_payloads(vectors: dict[str, Any]) -> None:
    g = vectors["gaen"]
    tek = bytes.fromhex(g["tek"])
    rpik, aemk = rpi_key(tek), aem_key(tek)
    metadata = bytes.fromhex(g["ble_metadata"])
    day = rpis_for_day(tek, g["en_interval_number"])
    assert len(day) == 144
    for item in g["advertised"]:
        rpi = rolling_proximity_identifier(rpik, g["en_interval_number"] + item["interval_offset"])
        assert rpi.hex() == item["rpi"]
        assert day[item["interval_offset"]] == rpi
        aem = encrypt_metadata(aemk, rpi, metadata)
        assert aem.hex() == item["aem"]
        assert decrypt_metadata(aemk, rpi, aem) == metadata


def test_dp3t_day_keys_and_ephids(vectors: dict[str, Any]) -> None:
    d = vectors["dp3t_lowcost"]
    sk1 = next_day_key(bytes.fromhex(d["sk0"]))
    assert sk1.hex() == d["sk1"]
    assert next_day_key(sk1).hex() == d["sk2"]
    ids = ephids(sk1)
    assert len(ids) == 96 and len(set(ids)) == 96
    assert [e.hex() for e in ids[:3]] == d["ephids_from_sk1_unshuffled"]
