"""OAuth clients and user accounts in the database (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from hygie.platform import Platform
from hygie.security import clients, users
from hygie.security.model import Kind
from hygie.security.tables import app_user, oauth_client
from tests.security.conftest import PASSWORD


def test_client_lifecycle(platform: Platform) -> None:
    engine = platform.engine
    new = clients.create_client(engine, "Laboratoire CHU",
                                "system/Observation.cruds system/Patient.rs")
    client_id, secret = new.client.client_id, new.secret
    assert len(secret) >= 40
    with engine.connect() as conn:
        stored = conn.execute(select(oauth_client.c.secret_hash)
                              .where(oauth_client.c.client_id == client_id)).scalar_one()
    assert stored.startswith("$argon2id$") and secret not in stored

    found = clients.authenticate_client(engine, client_id, secret)
    assert found is not None and found.name == "Laboratoire CHU"
    assert found.allowed_scopes.allows("Observation", "c")
    assert clients.authenticate_client(engine, client_id, secret + "x") is None
    assert clients.authenticate_client(engine, "c_unknown", secret) is None
    assert clients.authenticate_client(engine, "x" * 500, secret) is None

    assert [c.client_id for c in clients.list_clients(engine)] == [client_id]
    clients.disable_client(engine, client_id)
    assert clients.authenticate_client(engine, client_id, secret) is None
    assert clients.get_client(engine, client_id).disabled  # type: ignore[union-attr]
    with pytest.raises(clients.UnknownClient):
        clients.disable_client(engine, "c_unknown")


@pytest.mark.parametrize(("name", "scopes", "reason"), [
    ("", "system/*.rs", "name"),
    ("Lab", "", "at least one"),
    ("Lab", "system/Nothing.rs", "not a FHIR R4 resource type"),
])
def test_client_validation(platform: Platform, name: str, scopes: str, reason: str) -> None:
    with pytest.raises(clients.ClientError, match=reason):
        clients.create_client(platform.engine, name, scopes)


def test_user_lifecycle(platform: Platform) -> None:
    engine = platform.engine
    user = users.create_user(engine, "AMartin", PASSWORD, display="Alice Martin",
                             kind="practitioner", roles=["nurse", "icu"],
                             scopes="user/Patient.rs user/Observation.cruds",
                             fhir_user="Practitioner/p1", hospital="chu-nord")
    assert user.username == "amartin"
    with engine.connect() as conn:
        stored = conn.execute(select(app_user.c.password_hash)).scalar_one()
    assert stored.startswith("$argon2id$")

    found = users.authenticate_user(engine, "amartin", PASSWORD)
    assert found is not None and found.display == "Alice Martin"
    assert users.authenticate_user(engine, "AMARTIN ", PASSWORD) is not None  # case, spaces
    assert users.authenticate_user(engine, "amartin", PASSWORD + "!") is None
    assert users.authenticate_user(engine, "nobody", PASSWORD) is None
    assert users.authenticate_user(engine, "a" * 1000, PASSWORD) is None

    principal = found.principal()
    assert principal.kind is Kind.PRACTITIONER and principal.roles == {"nurse", "icu"}
    assert principal.fhir_user == "Practitioner/p1" and principal.patient is None
    assert principal.hospital == "chu-nord" and principal.may("Observation", "c")

    with pytest.raises(users.AccountExists):
        users.create_user(engine, "amartin", PASSWORD, display="Other", kind="admin")
    assert [u.username for u in users.list_users(engine)] == ["amartin"]
    users.disable_user(engine, "AMartin")
    assert users.authenticate_user(engine, "amartin", PASSWORD) is None
    with pytest.raises(users.UnknownAccount):
        users.disable_user(engine, "nobody")


def test_patient_account_is_bound_to_its_patient(platform: Platform) -> None:
    user = users.create_user(platform.engine, "jdupont", PASSWORD, display="Jeanne Dupont",
                             kind=Kind.PATIENT, scopes="patient/*.rs",
                             fhir_user="Patient/pat-42")
    assert user.principal().patient == "pat-42"


@pytest.mark.parametrize(("kwargs", "reason"), [
    ({"username": "bad name"}, "username"),
    ({"password": "short"}, "password"),
    ({"display": " "}, "display"),
    ({"kind": "service"}, "practitioner, a patient or an admin"),
    ({"kind": "wizard"}, "unknown kind"),
    ({"scopes": "system/*.rs"}, "for services"),
    ({"scopes": "user/Foo.rs"}, "not a FHIR R4 resource type"),
    ({"roles": ["ok", "not ok"]}, "role"),
    ({"fhir_user": "Organization/1"}, "not a reference"),
    ({"kind": "patient", "scopes": "patient/*.rs"}, "needs its Patient reference"),
    ({"kind": "patient", "fhir_user": "Practitioner/1"}, "must be a Patient reference"),
    ({"kind": "patient", "fhir_user": "Patient/1", "scopes": "user/*.rs"}, "patient/ scopes only"),
])
def test_user_validation(platform: Platform, kwargs: dict[str, object], reason: str) -> None:
    args: dict[str, object] = {"username": "someone", "password": PASSWORD,
                               "display": "Someone", "kind": "practitioner"}
    args.update(kwargs)
    username, password = args.pop("username"), args.pop("password")
    with pytest.raises(users.AccountError, match=reason):
        users.create_user(platform.engine, username, password, **args)  # type: ignore[arg-type]
