"""What the imaging service writes in the FHIR store, through its Python API only.

* ``sync_study``: one ImagingStudy per DICOM study (R4 imagingstudy.html), identified
  by ``urn:dicom:uid|urn:oid:<Study Instance UID>`` and rewritten by conditional update,
  with its series and instances, an Endpoint for DICOMweb (``dicom-wado-rs``), and a
  subject: the Patient whose identifier is the DICOM Patient ID (created from the
  DICOM patient module when the store has none).
* ``write_report``: a quantification as a DiagnosticReport (code LOINC 24627-2, CT
  Chest) with one Observation per figure, written in one transaction.

DICOM dates and times carry no zone; they are read as Europe/Paris (the territory's
clock) unless the header gives Timezone Offset From UTC, and written in UTC.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, select, update

from hygie.imaging import tables
from hygie.imaging.model import Quantification
from hygie.store.interactions import StoreContext

__all__ = ["PATIENT_ID_SYSTEM", "QUANT_SYSTEM", "sync_study", "write_report"]

#: System of Patient.identifier that the DICOM Patient ID (0010,0020) is a value of, by
#: default (setting ``[imaging] patient_system``): the hospitals' IPP, which the PACS
#: receives from the patient administration system, as the devices gateway does (PID-3).
PATIENT_ID_SYSTEM = "https://hygie.example/fhir/sid/ipp"
#: Code system of the quantification's Observations.
QUANT_SYSTEM = "urn:hygie:imaging:lung-quantification"
DCM = "http://dicom.nema.org/resources/ontology/DCM"
LOCAL_ZONE = ZoneInfo("Europe/Paris")
_BODY_SITES = {
    "CHEST": ("51185008", "Thoracic structure"),
    "THORAX": ("51185008", "Thoracic structure"),
    "LUNG": ("39607008", "Lung structure"),
    "ABDOMEN": ("113345001", "Abdominal structure"),
    "HEAD": ("69536005", "Head structure"),
}


def dicom_datetime(date: str, time_: str = "") -> str | None:
    """A DICOM DA (+ TM) read in Europe/Paris, as a FHIR dateTime in UTC."""
    if len(date) != 8 or not date.isdigit():
        return None
    digits = time_.split(".")[0]
    try:
        hour = int(digits[0:2]) if len(digits) >= 2 else 0
        minute = int(digits[2:4]) if len(digits) >= 4 else 0
        second = int(digits[4:6]) if len(digits) >= 6 else 0
        local = dt.datetime(int(date[:4]), int(date[4:6]), int(date[6:8]), hour, minute,
                            second, tzinfo=LOCAL_ZONE)
    except ValueError:
        return None
    return local.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _birth_date(value: str) -> str | None:
    if len(value) == 8 and value.isdigit():
        try:
            return dt.date(int(value[:4]), int(value[4:6]), int(value[6:])).isoformat()
        except ValueError:
            return None
    return None


def ensure_patient(store: StoreContext, row: Any, system: str = PATIENT_ID_SYSTEM) -> str:
    """``Patient/<id>`` whose identifier in ``system`` is the study's DICOM Patient ID:
    the patient's record when the store knows them, else created from the DICOM
    patient module."""
    patient_id = row.patient_id or f"unknown-{row.study_uid}"
    criteria = f"identifier={system}|{patient_id}"
    patient: dict[str, Any] = {"resourceType": "Patient", "identifier": [
        {"system": system, "value": patient_id}]}
    family, _, rest = (row.patient_name or "").partition("^")
    given = [g for g in rest.split("^")[:1] if g]
    if family or given:
        patient["name"] = [{k: v for k, v in (("family", family), ("given", given)) if v}]
    gender = {"M": "male", "F": "female", "O": "other"}.get((row.patient_sex or "").upper())
    if gender:
        patient["gender"] = gender
    birth = _birth_date(row.patient_birth_date or "")
    if birth:
        patient["birthDate"] = birth
    written = store.repository.conditional_create(patient, criteria)
    return f"Patient/{written.stored.res_id}"


def ensure_endpoint(store: StoreContext) -> str:
    """``Endpoint/<id>`` of this server's DICOMweb service."""
    address = store.base_url.rstrip("/").removesuffix("/fhir") + "/imaging/dicomweb"
    endpoint = {
        "resourceType": "Endpoint",
        "identifier": [{"system": "urn:hygie:endpoint", "value": "imaging-dicomweb"}],
        "status": "active",
        "connectionType": {
            "system": "http://terminology.hl7.org/CodeSystem/endpoint-connection-type",
            "code": "dicom-wado-rs"},
        "name": "Hygie DICOMweb",
        "payloadType": [{"text": "DICOM"}],
        "payloadMimeType": ["application/dicom"],
        "address": address,
    }
    written = store.repository.conditional_create(
        endpoint, "identifier=urn:hygie:endpoint|imaging-dicomweb")
    return f"Endpoint/{written.stored.res_id}"


def build_imaging_study(study: Any, series_rows: list[Any], instance_rows: list[Any],
                        subject: str, endpoint: str) -> dict[str, Any]:
    """The ImagingStudy resource of one study, from the index."""
    by_series: dict[str, list[Any]] = {}
    for inst in instance_rows:
        by_series.setdefault(inst.series_uid, []).append(inst)
    series_out = []
    for s in series_rows:
        members = by_series.get(s.series_uid, [])
        entry: dict[str, Any] = {
            "uid": s.series_uid,
            "modality": {"system": DCM, "code": s.modality or "OT"},
            "numberOfInstances": len(members),
            "endpoint": [{"reference": endpoint}],
        }
        if s.series_number is not None:
            entry["number"] = s.series_number
        if s.series_description:
            entry["description"] = s.series_description
        site = _BODY_SITES.get((s.body_part or "").upper())
        if site:
            entry["bodySite"] = {"system": "http://snomed.info/sct", "code": site[0],
                                 "display": site[1]}
        entry["instance"] = [
            {k: v for k, v in (
                ("uid", i.sop_instance_uid),
                ("sopClass", {"system": "urn:ietf:rfc:3986",
                              "code": f"urn:oid:{i.sop_class_uid}"}),
                ("number", i.instance_number)) if v is not None}
            for i in members]
        series_out.append(entry)
    resource: dict[str, Any] = {
        "resourceType": "ImagingStudy",
        "identifier": [{"system": "urn:dicom:uid", "value": f"urn:oid:{study.study_uid}"}],
        "status": "available",
        "subject": {"reference": subject},
        "endpoint": [{"reference": endpoint}],
        "numberOfSeries": len(series_out),
        "numberOfInstances": len(instance_rows),
        "series": series_out,
    }
    if study.accession_number:
        resource["identifier"].append({
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                                 "code": "ACSN"}]},
            "value": study.accession_number})
    modalities = [m for m in (study.modalities or "").split("\\") if m]
    if modalities:
        resource["modality"] = [{"system": DCM, "code": m} for m in modalities]
    started = dicom_datetime(study.study_date or "", study.study_time or "")
    if started:
        resource["started"] = started
    if study.study_description:
        resource["description"] = study.study_description
    return resource


def sync_study(engine: Engine, store: StoreContext, study_uid: str,
               patient_system: str = PATIENT_ID_SYSTEM) -> str:
    """Write the study's ImagingStudy from the index; returns its id."""
    with engine.connect() as conn:
        study = conn.execute(select(tables.study)
                             .where(tables.study.c.study_uid == study_uid)).first()
        if study is None:
            raise LookupError(study_uid)
        stamp = study.updated_at
        series_rows = list(conn.execute(
            select(tables.series).where(tables.series.c.study_uid == study_uid)
            .order_by(tables.series.c.series_number, tables.series.c.series_uid)))
        instance_rows = list(conn.execute(
            select(tables.instance.c.sop_instance_uid, tables.instance.c.series_uid,
                   tables.instance.c.sop_class_uid, tables.instance.c.instance_number)
            .where(tables.instance.c.study_uid == study_uid)
            .order_by(tables.instance.c.instance_number, tables.instance.c.sop_instance_uid)))
    with store.repository.transaction():
        subject = ensure_patient(store, study, patient_system)
        endpoint = ensure_endpoint(store)
        resource = build_imaging_study(study, series_rows, instance_rows, subject, endpoint)
        written = store.repository.conditional_update(
            "ImagingStudy", f"identifier=urn:dicom:uid|urn:oid:{study_uid}", resource)
    fhir_id = written.stored.res_id
    with engine.begin() as conn:
        # Clear the flag only if nothing arrived meanwhile (same updated_at).
        conn.execute(update(tables.study).where(tables.study.c.study_uid == study_uid,
                                                tables.study.c.updated_at == stamp)
                     .values(fhir_dirty=False, fhir_id=fhir_id))
        conn.execute(update(tables.study).where(tables.study.c.study_uid == study_uid)
                     .values(fhir_id=fhir_id))
    return fhir_id


def _quantity(value: float, unit: str) -> dict[str, Any]:
    code = {"%": "%", "mL": "mL", "{score}": "{score}", "{lesions}": "{lesions}"}[unit]
    return {"value": round(float(value), 2), "unit": unit.strip("{}"),
            "system": "http://unitsofmeasure.org", "code": code}


def report_observations(q: Quantification) -> list[tuple[str, str, dict[str, Any]]]:
    """(code, display, valueQuantity) of each figure of a quantification."""
    figures = [
        ("lung-volume", "Lung volume", _quantity(q.lung_volume_ml, "mL")),
        ("right-lung-volume", "Right lung volume", _quantity(q.right_lung_ml, "mL")),
        ("left-lung-volume", "Left lung volume", _quantity(q.left_lung_ml, "mL")),
        ("ground-glass-volume", "Ground-glass opacity volume",
         _quantity(q.ground_glass_ml, "mL")),
        ("consolidation-volume", "Consolidation volume", _quantity(q.consolidation_ml, "mL")),
        ("percent-opacity", "Percentage of opacity", _quantity(q.percent_opacity, "%")),
        ("percent-high-opacity", "Percentage of high opacity",
         _quantity(q.percent_high_opacity, "%")),
        ("percent-well-aerated", "Percentage of well-aerated lung",
         _quantity(q.percent_well_aerated, "%")),
        ("lesion-count", "Number of opacities", _quantity(q.lesion_count, "{lesions}")),
        ("total-severity-score", "Total severity score (0-30)",
         _quantity(q.total_score, "{score}")),
    ]
    for z in q.zones:
        figures.append((f"zone-score-{z.side}-{z.zone}",
                        f"Severity score, {z.side} lung, {z.zone} zone (0-5)",
                        _quantity(z.score, "{score}")))
        figures.append((f"zone-opacity-{z.side}-{z.zone}",
                        f"Percentage of opacity, {z.side} lung, {z.zone} zone",
                        _quantity(z.percent_opacity, "%")))
    return figures


def write_report(store: StoreContext, study_fhir_id: str, subject: str,
                 q: Quantification, *, series_uid: str, seg_uid: str | None) -> str:
    """The quantification as a DiagnosticReport with its Observations; returns its id."""
    issued = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    category = [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/"
                                       "observation-category", "code": "imaging"}]}]
    repo = store.repository
    with repo.transaction():
        refs = []
        for code, display, value in report_observations(q):
            obs = {
                "resourceType": "Observation",
                "status": "final",
                "category": category,
                "code": {"coding": [{"system": QUANT_SYSTEM, "code": code,
                                     "display": display}], "text": display},
                "subject": {"reference": subject},
                "effectiveDateTime": issued,
                "valueQuantity": value,
                "derivedFrom": [{"reference": f"ImagingStudy/{study_fhir_id}"}],
            }
            refs.append({"reference": f"Observation/{repo.create(obs).stored.res_id}"})
        conclusion = (f"Opacités : {q.percent_opacity:.1f} % du volume pulmonaire "
                      f"(dont condensations {q.percent_high_opacity:.1f} %), score de "
                      f"sévérité {q.total_score}/30.")
        report: dict[str, Any] = {
            "resourceType": "DiagnosticReport",
            "identifier": [{"system": "urn:hygie:imaging:quantification",
                            "value": f"{series_uid}"}],
            "status": "final",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074",
                                      "code": "RAD"}]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": "24627-2",
                                 "display": "CT Chest"}],
                     "text": "Quantification automatique des lésions pulmonaires"},
            "subject": {"reference": subject},
            "effectiveDateTime": issued,
            "issued": issued,
            "imagingStudy": [{"reference": f"ImagingStudy/{study_fhir_id}"}],
            "result": refs,
            "conclusion": conclusion,
        }
        if seg_uid:
            report["conclusion"] += f" Segmentation DICOM SEG {seg_uid}."
        written = repo.conditional_update(
            "DiagnosticReport", f"identifier=urn:hygie:imaging:quantification|{series_uid}",
            report)
    return written.stored.res_id
