"""Pre-admission as a service: invitations, the patient's form, staff review.

``PreadmissionDesk`` works for one ``SchedulingService`` (same database, store, key and
clock). Validation writes every resource with an id derived from the file's id, so a
validation interrupted after the store commit and run again rewrites the same
resources instead of creating duplicates.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import TYPE_CHECKING, Any

import orjson

from hygie.scheduling import admission, messages
from hygie.scheduling import preadmission as pre
from hygie.scheduling.errors import InvalidInput, InvalidState
from hygie.scheduling.ins import INS_NIR_SYSTEM
from hygie.scheduling.model import PreadmissionStatus, to_local
from hygie.scheduling.transactions import reading, writing

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from hygie.scheduling.engine import SchedulingService


class PreadmissionDesk:
    """Online pre-admission files of one scheduling service."""

    def __init__(self, service: SchedulingService) -> None:
        self.service = service
        self.engine = service.engine

    # --- links ------------------------------------------------------------------------

    def secret(self, file_id: str) -> str:
        """The secret of a file's link: an HMAC of its id under the server key."""
        mac = hmac.new(self.service.key, f"preadmission:{file_id}".encode(),
                       hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac[:24]).decode().rstrip("=")

    def url(self, file_id: str) -> str:
        return f"{self.service.base_url}/scheduling/preadmission/{self.secret(file_id)}"

    # --- invitation -------------------------------------------------------------------

    def invite_in(self, conn: Connection, *, site_id: str, planned_start_utc: int,
                  family: str, given: str, birth_date: str, phone: str | None,
                  booking_id: str | None = None) -> str:
        """Open a file inside the caller's transaction and send the link by SMS."""
        now = self.service.clock()
        file_id = pre.new_file_id()
        pre.invite(conn, file_id=file_id, secret=self.secret(file_id), site_id=site_id,
                   planned_start_utc=planned_start_utc, family=family, given=given,
                   birth_date=birth_date, phone=phone, now=now, booking_id=booking_id)
        if phone:
            when = to_local(planned_start_utc).strftime("%d/%m/%Y")
            messages.queue(conn, "sms", phone,
                           f"Hygie : préparez votre admission du {when} en ligne "
                           f"(identité, couverture sociale, documents) : {self.url(file_id)}",
                           "preadmission", now)
        return file_id

    def invite(self, **kwargs: Any) -> str:
        with writing(self.engine) as conn:
            return self.invite_in(conn, **kwargs)

    # --- the patient's side -----------------------------------------------------------

    def _file(self, conn: Connection, secret: str) -> Any:
        return pre.by_secret(conn, secret)

    def view(self, secret: str) -> dict[str, Any]:
        with reading(self.engine) as conn:
            row = self._file(conn, secret)
            files = pre.uploads(conn, row.id)
        return self._describe(row, files)

    def _describe(self, row: Any, files: list[pre.Upload]) -> dict[str, Any]:
        return {
            "id": row.id, "status": row.status, "site": row.site_id,
            "planned": to_local(row.planned_start_utc).strftime("%d/%m/%Y"),
            "family": row.family, "given": row.given, "birth_date": row.birth_date,
            "answers": orjson.loads(row.answers) if row.answers else None,
            "review_note": row.review_note, "patient": row.patient_ref,
            "encounter": row.encounter_ref, "response": row.response_id,
            "documents": [{"id": u.id, "kind": u.kind, "title": u.title,
                           "content_type": u.content_type, "size": u.size} for u in files],
        }

    def save(self, secret: str, raw: Any) -> list[str]:
        """Check and keep the answers; returns warnings the reviewer will see."""
        answers, warnings = pre.clean_answers(raw)
        with writing(self.engine) as conn:
            row = self._file(conn, secret)
            pre.save_answers(conn, row.id, {**answers, "warnings": warnings},
                             self.service.clock())
        return warnings

    def upload(self, secret: str, kind: str, title: str, data: bytes) -> pre.Upload:
        opts = self.service.options
        with writing(self.engine) as conn:
            row = self._file(conn, secret)
            return pre.add_upload(conn, row.id, kind, title, data, self.service.clock(),
                                  opts.max_upload_bytes, opts.max_uploads)

    def submit(self, secret: str) -> str:
        """Send the file for review; its answers go to the store as a
        QuestionnaireResponse. Returns the response's id."""
        with reading(self.engine) as conn:
            row = self._file(conn, secret)
            files = pre.uploads(conn, row.id)
        if row.status not in (PreadmissionStatus.INVITED, PreadmissionStatus.REJECTED):
            raise InvalidState("this file was already submitted")
        if not row.answers:
            raise InvalidInput("fill in the form before submitting it")
        answers = orjson.loads(row.answers)
        repo = self.service.repository
        self.ensure_questionnaire()
        now = self.service.clock()
        response = admission.questionnaire_response(row.id, answers, now, row.patient_ref,
                                                    files)
        response_id = f"pa-{row.id}"
        repo.update("QuestionnaireResponse", response_id, {**response, "id": response_id})
        with writing(self.engine) as conn:
            pre.mark(conn, row.id, PreadmissionStatus.SUBMITTED, now, response_id=response_id)
        return response_id

    def ensure_questionnaire(self) -> None:
        self.service.repository.conditional_create(
            admission.QUESTIONNAIRE,
            f"url={admission.QUESTIONNAIRE_URL}&version={admission.QUESTIONNAIRE_VERSION}")

    # --- the staff's side -------------------------------------------------------------

    def listing(self, status: str | None = None) -> list[dict[str, Any]]:
        with reading(self.engine) as conn:
            return [self._describe(r, []) for r in pre.listing(conn, status)]

    def detail(self, file_id: str) -> dict[str, Any]:
        with reading(self.engine) as conn:
            row = pre.get(conn, file_id)
            files = pre.uploads(conn, file_id)
        return self._describe(row, files)

    def document(self, file_id: str, upload_id: int) -> tuple[str, bytes]:
        with reading(self.engine) as conn:
            return pre.upload_data(conn, file_id, upload_id)

    def _existing_patient(self, row: Any, answers: dict[str, Any]) -> tuple[str, dict | None]:
        """The Patient this file is about: the booking's, else the one with this INS."""
        repo = self.service.repository
        ref = row.patient_ref
        if ref is None and row.booking_id:
            self.service.project()
            from hygie.scheduling import booking as bk

            with reading(self.engine) as conn:
                ref = bk.get(conn, row.booking_id).patient.patient_ref
        if ref is None and answers["identity"]["ins"]:
            page = repo.search("Patient", [
                ("identifier", f"{INS_NIR_SYSTEM}|{answers['identity']['ins']}"),
                ("_count", "1")], strict=True)
            if page.matches:
                ref = f"Patient/{page.matches[0].res_id}"
        if ref is None:
            return f"Patient/pa-{row.id}", None
        return ref, repo.read("Patient", ref.split("/", 1)[1]).resource

    def validate(self, file_id: str) -> dict[str, Any]:
        """Write Patient, Coverage, Consent, DocumentReference and the planned Encounter."""
        with reading(self.engine) as conn:
            row = pre.get(conn, file_id)
            files = pre.uploads(conn, file_id)
            blobs = {u.id: pre.upload_data(conn, file_id, u.id)[1] for u in files}
        if row.status != PreadmissionStatus.SUBMITTED:
            raise InvalidState("only a submitted file can be validated")
        answers = orjson.loads(row.answers)
        patient_ref, existing = self._existing_patient(row, answers)
        patient_id = patient_ref.split("/", 1)[1]
        now = self.service.clock()
        repo = self.service.repository
        base = f"pa-{file_id}"
        written: list[str] = []
        with repo.transaction():
            patient = admission.patient_resource(answers, existing)
            repo.update("Patient", patient_id, {**patient, "id": patient_id})
            written.append(patient_ref)
            resources = [
                *[(f"{base}-{'amo' if c['type']['coding'][0]['code'] == 'PUBLICPOL' else 'amc'}",
                   c) for c in admission.coverage_resources(answers, patient_ref)],
                *[(f"{base}-{key.replace('_', '-')}", c) for key, c in zip(
                    answers["consents"], admission.consent_resources(
                        answers, patient_ref, now, f"Organization/{row.site_id}"), strict=True)],
                *[(f"{base}-doc-{u.id}", admission.document_resource(u, blobs[u.id],
                                                                     patient_ref, now))
                  for u in files],
                (f"{base}-stay", admission.encounter_resource(
                    patient_ref, row.site_id, row.planned_start_utc, row.booking_id)),
            ]
            for res_id, resource in resources:
                repo.update(resource["resourceType"], res_id, {**resource, "id": res_id})
                written.append(f"{resource['resourceType']}/{res_id}")
            if row.response_id:
                response = repo.read("QuestionnaireResponse", row.response_id).resource
                response["subject"] = {"reference": patient_ref}
                response.pop("meta", None)
                repo.update("QuestionnaireResponse", row.response_id, response)
        with writing(self.engine) as conn:
            pre.mark(conn, file_id, PreadmissionStatus.VALIDATED, now, patient_ref=patient_ref,
                     encounter_ref=f"Encounter/{base}-stay", review_note=None)
        return {"patient": patient_ref, "encounter": f"Encounter/{base}-stay",
                "written": written}

    def reject(self, file_id: str, note: str) -> None:
        """Send the file back to the patient with what to fix."""
        if not note.strip():
            raise InvalidInput("say what the patient must fix")
        with writing(self.engine) as conn:
            row = pre.get(conn, file_id)
            if row.status != PreadmissionStatus.SUBMITTED:
                raise InvalidState("only a submitted file can be sent back")
            now = self.service.clock()
            pre.mark(conn, file_id, PreadmissionStatus.REJECTED, now, review_note=note[:1000])
            if row.phone:
                messages.queue(conn, "sms", row.phone,
                               "Hygie : votre dossier de pré-admission est à compléter : "
                               f"{self.url(file_id)}", "preadmission", now)
