"""Encryption at rest: sealed bodies, bound to their rows, and key rotation under load."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, update

from hygie.platform import Platform
from hygie.security.encryption import (
    MAGIC,
    BodyVault,
    LocalMasterKey,
    SealError,
    count_not_sealed_by,
    create_data_key,
    key_id_of,
    reseal_all,
    rotate,
)
from hygie.security.installation import install
from hygie.store.schema import resource, resource_version
from hygie.store.server import open_store
from tests.security.territory import make_platform


@pytest.fixture
def platform(database_url: str, tmp_path: Path) -> Iterator[Platform]:
    platform = make_platform(database_url, tmp_path / "var")
    install(platform)
    yield platform
    platform.close()


def _patient(n: int) -> dict:  # type: ignore[type-arg]
    return {"resourceType": "Patient", "name": [{"family": f"Secretname{n}"}],
            "birthDate": "1960-01-01"}


def test_bodies_are_sealed_at_rest_and_read_back(platform: Platform) -> None:
    repo = open_store(platform).repository
    written = repo.create(_patient(1))
    with platform.engine.connect() as conn:
        raw = bytes(conn.execute(select(resource.c.body)).scalar_one())
        version = bytes(conn.execute(select(resource_version.c.body)).scalar_one())
    assert raw.startswith(MAGIC) and version.startswith(MAGIC)
    assert b"Secretname" not in raw and b"Secretname" not in version
    assert repo.read("Patient", written.stored.res_id).resource["name"][0]["family"] == \
        "Secretname1"
    assert repo.vread("Patient", written.stored.res_id, 1).resource["birthDate"] == "1960-01-01"


def test_a_body_moved_to_another_row_does_not_open(platform: Platform) -> None:
    repo = open_store(platform).repository
    a = repo.create(_patient(1)).stored.res_id
    b = repo.create(_patient(2)).stored.res_id
    with platform.engine.begin() as conn:
        body_a = conn.execute(select(resource.c.body).where(resource.c.res_id == a)).scalar()
        conn.execute(update(resource).where(resource.c.res_id == b).values(body=body_a))
    with pytest.raises(SealError, match="copied from another row"):
        repo.read("Patient", b)


def test_wrong_master_key_and_altered_bytes(platform: Platform) -> None:
    vault = install(platform).vault
    assert vault is not None
    sealed = vault.seal(b'{"resourceType":"Patient"}', "Patient/x/1")
    stranger = BodyVault(platform.engine, LocalMasterKey(b"\x01" * 32))
    with pytest.raises(SealError):
        stranger.open(sealed, "Patient/x/1")
    flipped = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(SealError):
        vault.open(flipped, "Patient/x/1")
    assert vault.open(b'{"legacy": true}', "Patient/x/1") == b'{"legacy": true}'


def test_rotation_reseals_everything_while_the_store_is_busy(platform: Platform) -> None:
    repo = open_store(platform).repository
    vault = install(platform).vault
    assert vault is not None
    vault.refresh_s = 0.2
    ids = [repo.create(_patient(n)).stored.res_id for n in range(150)]
    stop = threading.Event()
    errors: list[BaseException] = []
    written: list[str] = []

    def writer() -> None:
        n = 1000
        while not stop.is_set():
            try:
                written.append(repo.create(_patient(n)).stored.res_id)
                repo.update("Patient", ids[n % len(ids)],
                            {**_patient(n), "id": ids[n % len(ids)]})
            except BaseException as exc:
                errors.append(exc)
            n += 1

    def reader() -> None:
        while not stop.is_set():
            try:
                for res_id in ids[::7]:
                    assert repo.read("Patient", res_id).resource["resourceType"] == "Patient"
                repo.search("Patient", [("birthdate", "1960-01-01"), ("_count", "50")])
            except BaseException as exc:
                errors.append(exc)

    threads = [threading.Thread(target=writer), threading.Thread(target=reader)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.3)
        new_key, report = rotate(platform.engine, vault, settle_s=0.5)
        time.sleep(0.2)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors, errors[:3]
    assert written, "the writer made progress during the rotation"
    assert report.resealed > 150
    # the writer went on after the pass: a last pass catches what it wrote meanwhile
    final = reseal_all(platform.engine, vault)
    assert final.remaining == 0
    assert count_not_sealed_by(platform.engine, new_key) == 0
    with platform.engine.connect() as conn:
        keys = {key_id_of(bytes(b)) for (b,) in conn.execute(
            select(resource.c.body).where(resource.c.body.is_not(None)))}
    assert keys == {new_key}
    for res_id in [*ids, *written[:50]]:
        assert repo.read("Patient", res_id).resource["name"][0]["family"].startswith("Secret")


def test_old_keys_still_open_history(platform: Platform) -> None:
    repo = open_store(platform).repository
    vault = install(platform).vault
    assert vault is not None
    res_id = repo.create(_patient(1)).stored.res_id
    create_data_key(platform.engine, vault.master)
    vault.refresh_s = 0
    repo.update("Patient", res_id, {**_patient(2), "id": res_id})
    assert repo.vread("Patient", res_id, 1).resource["name"][0]["family"] == "Secretname1"
    assert repo.read("Patient", res_id).resource["name"][0]["family"] == "Secretname2"
