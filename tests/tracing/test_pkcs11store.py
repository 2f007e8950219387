"""The key store in a PKCS#11 token (SoftHSM), and the whole protocol on top of it."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from hygie.platform import Platform
from hygie.tracing.contacts import issue_code, process_contacts, report
from hygie.tracing.engine import TracingService, open_keystore
from tests.tracing.conftest import Clock, ask_status, meet, register

LIBRARY = Path("/usr/lib/softhsm/libsofthsm2.so")
PIN = "1234"


@pytest.fixture(scope="session")
def token(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A fresh SoftHSM token for this test session."""
    if not LIBRARY.exists() or shutil.which("softhsm2-util") is None:
        pytest.skip("SoftHSM is absent (apt-get install softhsm2)")
    pytest.importorskip("pkcs11", reason="python-pkcs11 is absent (pip install python-pkcs11)")
    folder = tmp_path_factory.mktemp("softhsm")
    (folder / "tokens").mkdir()
    conf = folder / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {folder / 'tokens'}\n")
    # The library reads its configuration once per process, when first loaded.
    os.environ.setdefault("SOFTHSM2_CONF", str(conf))
    label = "hygie-tracing-test"
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", label, "--pin", PIN,
                    "--so-pin", "8765"], check=True, capture_output=True,
                   env={**os.environ, "SOFTHSM2_CONF": os.environ["SOFTHSM2_CONF"]})
    return {"library": str(LIBRARY), "token": label, "pin": PIN}


def test_keys_live_in_the_token(token: dict[str, str], tmp_path: Path) -> None:
    store = open_keystore({"pkcs11": token}, tmp_path)
    again = open_keystore({"pkcs11": token}, tmp_path)
    assert store.registration_public_key() == again.registration_public_key()
    assert store.federation_key() == again.federation_key()
    peer = ec.generate_private_key(ec.SECP256R1())
    server = serialization.load_der_public_key(store.registration_public_key())
    assert isinstance(server, ec.EllipticCurvePublicKey)
    assert store.ecdh(peer.public_key()) == peer.exchange(ec.ECDH(), server)
    blob = store.wrap(b"s" * 32, b"user")
    assert again.unwrap(blob, b"user") == b"s" * 32
    with pytest.raises(InvalidTag):
        store.unwrap(blob, b"someone else")
    key = store.daily_key(7, create=True)
    assert key is not None and len(key) == 24 and again.daily_key(7) == key
    assert store.forget_days_before(8) >= 1
    assert open_keystore({"pkcs11": token}, tmp_path).daily_key(7) is None


def test_protocol_on_the_token(token: dict[str, str], sqlite_platform: Platform,
                               clock: Clock, tmp_path: Path) -> None:
    svc = TracingService(sqlite_platform.engine, open_keystore({"pkcs11": token}, tmp_path),
                         clock=clock)
    svc.create_tables()
    alice, bob = register(svc), register(svc)
    meet(alice, bob, clock.ntp(), 30)
    clock.advance(2000)
    report(svc, alice.report(issue_code(svc).code))
    assert process_contacts(svc).exposures_added > 0
    assert ask_status(svc, bob, clock.ntp()).at_risk
