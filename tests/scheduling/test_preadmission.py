"""Online pre-admission: INS checks, the form, uploads, review, and the FHIR resources."""

from __future__ import annotations

import base64
import re
from datetime import date, time
from typing import Any

import pytest
from sqlalchemy import select

from hygie.scheduling import tables as t
from hygie.scheduling.availability import local_instant
from hygie.scheduling.engine import SchedulingService
from hygie.scheduling.errors import InvalidInput, InvalidState, PayloadTooLarge
from hygie.scheduling.ins import INS_NIR_SYSTEM, nir_problem
from hygie.scheduling.model import PARIS, Patient
from tests.scheduling.conftest import last_sms, staff_token

#: A well-formed NIR (woman born in May 1980 in Indre-et-Loire), key computed by hand.
NIR = "2800537261123"
NIR += f"{97 - int(NIR) % 97:02d}"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
PDF = b"%PDF-1.4\n%fake but well-started\n"

ANSWERS = {
    "identity": {"family": "Durand", "given": "Alice", "birth_date": "1980-05-03",
                 "gender": "female", "ins": NIR, "address_line": "3 rue Nationale",
                 "postal_code": "37000", "city": "Tours", "phone": "+33612345678"},
    "insurance": {"amo_nir": NIR, "amo_fund": "CPAM d'Indre-et-Loire",
                  "amc_name": "Mutuelle des Tourangeaux", "amc_member": "MT-0042"},
    "contact": {"family": "Durand", "given": "Marc", "relationship": "N",
                "phone": "+33698765432"},
    "consents": {"care": True, "data_sharing": False, "trusted_person": True},
}


def test_nir_checks() -> None:
    assert nir_problem(NIR) is None
    assert nir_problem(NIR[:13] + "00") is not None
    assert nir_problem("123") is not None
    corsica = "18502" + "2A" + "004012"  # born in Corse-du-Sud: 2A counts as 19
    corsica += f"{97 - int(corsica.replace('2A', '19')) % 97:02d}"
    assert nir_problem(corsica) is None


def _invite(service: SchedulingService) -> tuple[str, str]:
    at = local_instant(date(2021, 3, 9), time(14), PARIS)
    slot = service.search(first_utc=at, last_utc=at + 1, type_code="anesthesie")[0].id
    booking = service.book(slot, Patient("Durand", "Alice", "1980-05-03", "+33612345678"))
    with service.engine.connect() as conn:
        sms = conn.execute(select(t.message.c.body).where(
            t.message.c.purpose == "preadmission")).scalar_one()
    match = re.search(r"/scheduling/preadmission/(\S+)", sms)
    assert match, sms
    return booking.id, match.group(1)


def test_booking_an_anaesthesia_consultation_invites_to_preadmission(
        service: SchedulingService) -> None:
    _booking, secret = _invite(service)
    desk = service.preadmission
    view = desk.view(secret)
    assert view["status"] == "invited" and view["planned"] == "09/03/2021"
    with pytest.raises(InvalidInput):
        desk.submit(secret)
    bad = {**ANSWERS, "identity": {**ANSWERS["identity"], "ins": NIR[:13] + "00"}}
    with pytest.raises(InvalidInput, match="key"):
        desk.save(secret, bad)
    with pytest.raises(InvalidInput):
        desk.save(secret, {**ANSWERS, "consents": {"trusted_person": True}, "contact": {}})
    assert desk.save(secret, ANSWERS) == []
    desk.upload(secret, "identity", "Carte d'identité", PNG)
    desk.upload(secret, "insurance-card", "", PDF)
    with pytest.raises(InvalidInput, match="PDF, JPEG and PNG"):
        desk.upload(secret, "other", "script", b"<script>alert(1)</script>")
    with pytest.raises(PayloadTooLarge):
        desk.upload(secret, "other", "big", PDF + b"0" * service.options.max_upload_bytes)
    response_id = desk.submit(secret)
    with pytest.raises(InvalidState):
        desk.save(secret, ANSWERS)
    response = service.repository.read("QuestionnaireResponse", response_id).resource
    assert response["questionnaire"].startswith("https://hygie.example/fhir/Questionnaire/")
    assert response["status"] == "completed"


def test_validation_writes_patient_coverage_consent_documents_and_stay(
        service: SchedulingService) -> None:
    booking_id, secret = _invite(service)
    desk = service.preadmission
    desk.save(secret, ANSWERS)
    upload = desk.upload(secret, "identity", "Carte d'identité", PNG)
    desk.submit(secret)
    file_id = desk.view(secret)["id"]
    result = desk.validate(file_id)
    repo = service.repository
    patient_ref = result["patient"]
    # The Patient is the one the booking created, now with the INS and the contact.
    appointment = repo.read("Appointment", booking_id).resource
    assert appointment["participant"][0]["actor"]["reference"] == patient_ref
    patient = repo.read("Patient", patient_ref.split("/")[1]).resource
    assert {"system": INS_NIR_SYSTEM, "value": NIR} in [
        {k: i[k] for k in ("system", "value")} for i in patient["identifier"]]
    assert patient["gender"] == "female" and patient["address"][0]["city"] == "Tours"
    assert patient["contact"][0]["relationship"][0]["coding"][0]["code"] == "N"
    found = repo.search("Patient", [("identifier", f"{INS_NIR_SYSTEM}|{NIR}")])
    assert [m.res_id for m in found.matches] == [patient_ref.split("/")[1]]
    coverages = repo.search("Coverage", [("beneficiary", patient_ref)]).matches
    assert sorted(c.resource["type"]["coding"][0]["code"] for c in coverages) == [
        "EHCPOL", "PUBLICPOL"]
    consents = repo.search("Consent", [("patient", patient_ref)]).matches
    assert sorted(c.resource["provision"]["type"] for c in consents) == [
        "deny", "permit", "permit"]
    docs = repo.search("DocumentReference", [("subject", patient_ref)]).matches
    assert len(docs) == 1
    attachment = docs[0].resource["content"][0]["attachment"]
    assert base64.b64decode(attachment["data"]) == PNG and attachment["size"] == upload.size
    stay = repo.read("Encounter", result["encounter"].split("/")[1]).resource
    assert stay["status"] == "planned" and stay["class"]["code"] == "IMP"
    assert stay["period"]["start"] == "2021-03-09T13:00:00Z"
    assert stay["appointment"] == [{"reference": f"Appointment/{booking_id}"}]
    assert desk.detail(file_id)["status"] == "validated"
    with pytest.raises(InvalidState):
        desk.validate(file_id)


def test_review_can_send_a_file_back(service: SchedulingService) -> None:
    _booking_id, secret = _invite(service)
    desk = service.preadmission
    desk.save(secret, ANSWERS)
    desk.submit(secret)
    file_id = desk.view(secret)["id"]
    with pytest.raises(InvalidInput):
        desk.reject(file_id, " ")
    desk.reject(file_id, "La pièce d'identité manque.")
    assert "à compléter" in last_sms(service.platform, "+33612345678")
    view = desk.view(secret)
    assert view["status"] == "rejected" and view["review_note"] == "La pièce d'identité manque."
    desk.upload(secret, "identity", "CNI", PNG)
    desk.submit(secret)
    assert desk.listing("submitted")[0]["id"] == file_id


def test_preadmission_over_http(client: Any, platform: Any, service: SchedulingService) -> None:
    _booking_id, secret = _invite(service)
    base = f"/scheduling/public/api/preadmission/{secret}"
    assert client.get(base).json()["status"] == "invited"
    assert client.put(base, json={"answers": "nope"}).status_code == 400
    saved = client.put(base, json={"answers": ANSWERS})
    assert saved.status_code == 200 and saved.json()["warnings"] == []
    sent = client.post(base + "/documents", data={"kind": "identity", "title": "CNI"},
                       files={"file": ("cni.png", PNG, "image/png")})
    assert sent.status_code == 201, sent.text
    disguised = client.post(base + "/documents", data={"kind": "other"},
                            files={"file": ("x.pdf", b"MZ\x90\x00", "application/pdf")})
    assert disguised.status_code == 400
    big = client.post(base + "/documents", data={"kind": "other"},
                      files={"file": ("big.pdf", PDF + b"0" * (6 * 1024 * 1024),
                                      "application/pdf")})
    assert big.status_code == 413
    assert client.post(base + "/submit").status_code == 200
    staff = {"Authorization": f"Bearer {staff_token(platform)}"}
    files = client.get("/scheduling/api/preadmissions?status=submitted", headers=staff).json()
    file_id = files["files"][0]["id"]
    detail = client.get(f"/scheduling/api/preadmissions/{file_id}", headers=staff).json()
    doc = client.get(f"/scheduling/api/preadmissions/{file_id}/documents/"
                     f"{detail['documents'][0]['id']}", headers=staff)
    assert doc.content == PNG and doc.headers["content-security-policy"] == "sandbox"
    reader = {"Authorization": f"Bearer {staff_token(platform, 'system/*.rs')}"}
    assert client.post(f"/scheduling/api/preadmissions/{file_id}/validate",
                       headers=reader).status_code == 403
    done = client.post(f"/scheduling/api/preadmissions/{file_id}/validate", headers=staff)
    assert done.status_code == 200 and done.json()["encounter"].startswith("Encounter/")
    invited = client.post("/scheduling/api/preadmissions", headers=staff, json={
        "site": "ch-jeanne-sorel", "planned": "2021-04-12", "family": "Roux",
        "given": "Jean", "birth_date": "1960-01-01", "phone": "07 81 22 33 44"})
    assert invited.status_code == 201
    assert "/scheduling/preadmission/" in last_sms(platform, "+33781223344")
