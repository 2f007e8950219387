"""The ROBERT server end to end through its Python API, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64

import pytest
import sqlalchemy as sa

from hygie.tracing import tables as t
from hygie.tracing.contacts import issue_code, process_contacts, report
from hygie.tracing.engine import TracingService
from hygie.tracing.errors import (
    BadMac,
    CaptchaError,
    EpochMismatch,
    InvalidRequest,
    ReplayedRequest,
    SubmissionCodeError,
    TimeOutOfTolerance,
    TooSoon,
    UnknownUser,
)
from hygie.tracing.phone import PhoneApp, b64
from tests.tracing.conftest import Clock, ask_status, meet, register


def test_registration_behind_the_captcha(service: TracingService, clock: Clock) -> None:
    phone = PhoneApp()
    body = {"clientPublicECDHKey": phone.public_key()}
    cid = service.create_captcha("image", "10.0.0.1")
    with service.engine.connect() as conn:
        answer = conn.execute(sa.select(t.captcha.c.answer)
                              .where(t.captcha.c.id == cid)).scalar_one()
    with pytest.raises(CaptchaError, match="wrong"):
        service.register({**body, "captchaId": cid, "captcha": "nope"}, "10.0.0.1")
    with pytest.raises(CaptchaError, match="already used"):  # single use, even when wrong
        service.register({**body, "captchaId": cid, "captcha": answer}, "10.0.0.1")
    cid = service.create_captcha("audio", "10.0.0.1")
    with service.engine.connect() as conn:
        answer = conn.execute(sa.select(t.captcha.c.answer)
                              .where(t.captcha.c.id == cid)).scalar_one()
    done = service.register({**body, "captchaId": cid, "captcha": f" {answer} "}, "10.0.0.1")
    phone.complete_registration(service.config()["serverPublicKey"], done.tuples)
    # 4 days of tuples from the current epoch, all decryptable by the server to this user.
    assert len(phone.tuples) == 4 * 96
    epoch = min(phone.tuples)
    assert service.codec.decrypt(phone.tuples[epoch][0], epoch) == (epoch, done.id_a)


def test_captcha_expires(service: TracingService, clock: Clock) -> None:
    cid = service.create_captcha("image", "10.0.0.2")
    assert service.captcha_media(cid, "image")[:8] == b"\x89PNG\r\n\x1a\n"
    clock.advance(301)
    with pytest.raises(CaptchaError, match="expired"):
        service.captcha_media(cid, "image")
    with pytest.raises(CaptchaError, match="expired"):
        service.register({"clientPublicECDHKey": PhoneApp().public_key(), "captchaId": cid,
                          "captcha": "X"}, "10.0.0.2")


def test_bad_public_key_is_refused(service: TracingService) -> None:
    with pytest.raises(InvalidRequest, match="P-256"):
        service.register({"clientPublicECDHKey": b64(b"\x04" + bytes(64)), "captchaId": "x",
                          "captcha": "y"}, "c")


def test_status_rules(service: TracingService, clock: Clock) -> None:
    phone = register(service)
    first = service.status(phone.status_request(clock.ntp()))
    assert not first.at_risk and first.risk_level == 0
    assert first.tuples is not None  # first status of the day renews the tuples
    phone.add_tuples(first.tuples)
    # Minimal spacing: two epochs.
    clock.advance(900)
    with pytest.raises(TooSoon):
        service.status(phone.status_request(clock.ntp()))
    clock.advance(900)
    req = phone.status_request(clock.ntp())
    again = service.status(req)
    assert again.tuples is None  # same day: no new tuples
    # The same request sent again, still within the time tolerance, is a replay.
    clock.advance(30)
    with pytest.raises(ReplayedRequest):
        service.status(req)


def test_authentication_errors(service: TracingService, clock: Clock) -> None:
    phone = register(service)
    req = phone.status_request(clock.ntp())
    bad_mac = dict(req, mac=b64(bytes(32)))
    with pytest.raises(BadMac):
        service.status(bad_mac)
    late = phone.status_request(clock.ntp() + 61)
    with pytest.raises(TimeOutOfTolerance):
        service.status(late)
    with pytest.raises(EpochMismatch):
        service.status(dict(req, epochId=int(req["epochId"]) + 1))  # type: ignore[call-overload]
    with pytest.raises(InvalidRequest, match="ebid must hold 8 bytes"):
        service.status(dict(req, ebid=b64(b"123")))
    with pytest.raises(InvalidRequest, match="base64"):
        service.status(dict(req, mac="***"))
    service.unregister(phone.unregister_request(clock.ntp() + 1))
    clock.advance(2)
    with pytest.raises(UnknownUser):
        service.status(phone.status_request(clock.ntp()))


def test_positive_declaration_notifies_close_contacts(service: TracingService,
                                                      clock: Clock) -> None:
    alice, bob, carol = register(service), register(service), register(service)
    start = clock.ntp()
    meet(alice, bob, start, 30)                 # 30 minutes at -50 dBm: close contact
    meet(alice, carol, start, 30, rssi=-85)     # far away the whole time
    clock.advance(3600)
    code = issue_code(service)
    assert report(service, alice.report(code.code)) > 0
    done = process_contacts(service)
    assert done.exposures_added == done.contacts > 0
    assert done.checks == {"ok": done.hellos}
    with service.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(t.contact)).scalar() == 0
    bob_status = ask_status(service, bob, clock.ntp())
    assert bob_status.at_risk and bob_status.risk_level == 4
    assert bob_status.last_contact_date is not None
    assert not ask_status(service, carol, clock.ntp()).at_risk
    assert not ask_status(service, alice, clock.ntp()).at_risk
    # Still at risk six days later (asking daily), no more after seven.
    for _ in range(6):
        clock.advance(86400)
        assert ask_status(service, bob, clock.ntp()).at_risk
    clock.advance(86400 + 3600)
    assert not ask_status(service, bob, clock.ntp()).at_risk
    with service.engine.connect() as conn:
        assert conn.execute(sa.select(t.registration.c.notified)
                            .where(t.registration.c.notified.is_(True))).all() == [(True,)]


def test_delete_history_clears_exposures(service: TracingService, clock: Clock) -> None:
    alice, bob = register(service), register(service)
    meet(alice, bob, clock.ntp(), 40)
    clock.advance(2700)
    report(service, alice.report(issue_code(service, "long").code))
    process_contacts(service)
    service.delete_history(bob.delete_history_request(clock.ntp()))
    with pytest.raises(ReplayedRequest):
        service.delete_history(bob.delete_history_request(clock.ntp()))
    clock.advance(1)
    assert not service.status(bob.status_request(clock.ntp())).at_risk
    with service.engine.connect() as conn:
        row = conn.execute(sa.select(t.registration.c.exposed_epochs, t.registration.c.notified)
                           .where(t.registration.c.exposed_epochs != "{}")).first()
    assert row is None


def test_submission_codes_are_single_use_and_expire(service: TracingService,
                                                     clock: Clock) -> None:
    alice = register(service)
    code = issue_code(service)
    assert report(service, alice.report(code.code)) == 0
    with pytest.raises(SubmissionCodeError, match="already used"):
        report(service, alice.report(code.code))
    with pytest.raises(SubmissionCodeError, match="unknown"):
        report(service, alice.report("ZZZZZZ"))
    late = issue_code(service)
    clock.advance(3601)
    with pytest.raises(SubmissionCodeError, match="expired"):
        report(service, alice.report(late.code))


def test_report_validation_is_precise(service: TracingService) -> None:
    code = issue_code(service).code
    good_id = {"timeCollectedOnDevice": 1, "timeFromHelloMessage": 1,
               "mac": b64(bytes(5)), "rssiCalibrated": -50}
    contact = {"ebid": b64(bytes(8)), "ecc": b64(b"\x01"), "ids": [good_id]}
    cases = [
        ({"contacts": [contact]}, "token"),
        ({"token": code, "contacts": "x"}, "contacts must be a list"),
        ({"token": code, "contacts": [dict(contact, ebid=b64(bytes(7)))]}, r"contacts\[0\].ebid"),
        ({"token": code, "contacts": [dict(contact, ids=[])]}, "ids must list"),
        ({"token": code, "contacts": [dict(contact, ids=[dict(good_id, rssiCalibrated=500)])]},
         "rssiCalibrated"),
    ]
    for body, message in cases:
        with pytest.raises(InvalidRequest, match=message):
            report(service, body)
    # A refused report did not consume the code.
    assert report(service, {"token": code, "contacts": [contact]}) == 1


def test_public_key_formats(service: TracingService) -> None:
    phone = PhoneApp()
    from cryptography.hazmat.primitives import serialization

    point = phone.private_key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    from hygie.tracing.protocol import load_public_key

    assert load_public_key(point).public_numbers() == load_public_key(
        base64.b64decode(phone.public_key())).public_numbers()
