"""The chest CTs of ``hygie demo``: two studies on the radiologists' worklist.

The demo has no scanner, so it archives two chest CT phantoms (``phantom.py``: lungs,
vessels and, for the first, ground-glass and consolidation lesions) under the names and
IPPs of the patients of the first two ICU beds, and quantifies them as on arrival, so
that the worklist, the viewer and the quantification report have something to show
(about 10 seconds). Nothing is done when the archive already holds a study.
"""

from __future__ import annotations

from typing import Any

#: IPPs of the patients scanned: the first ICU beds' (``devices.demo`` simulates them).
PATIENT_IPPS = ("0000000001", "0000000002")
#: The demo account whose worklist the studies are put on (``hygie demo`` creates it).
READER = "radiologue"


def _dicom_name(patient: dict[str, Any]) -> str:
    """FAMILY^Given, as DICOM writes a person's name."""
    name = (patient.get("name") or [{}])[0]
    return f"{name.get('family', '').upper()}^{' '.join(name.get('given', []))}"


def seed_demo(platform: Any) -> str:
    """Archive and quantify the demo's chest CTs (once); say what was done."""
    from dataclasses import replace

    from sqlalchemy import func, select

    from hygie.imaging import tables
    from hygie.imaging.model import ImagingSettings
    from hygie.imaging.phantom import PhantomSpec, generate_phantom, phantom_series
    from hygie.imaging.readings import Readings
    from hygie.imaging.service import ImagingService
    from hygie.store.server import open_store
    from hygie.store.synthetic.identifiers import IPP_SYSTEM

    with platform.engine.connect() as conn:
        archived = conn.scalar(select(func.count()).select_from(tables.study))
    if archived:
        return f"{archived} studies already archived"
    repository = open_store(platform).repository
    # arrivals queue their quantification, run here rather than by a worker thread
    settings = replace(ImagingSettings.from_extra(platform.settings.extra),
                       quantify_on_arrival=True, stable_s=0.0)
    service = ImagingService(platform, settings)
    scanned = []
    studies: list[str] = []
    for seed, ipp in enumerate(PATIENT_IPPS, start=1):
        found = repository.search("Patient", [("identifier", f"{IPP_SYSTEM}|{ipp}")]).matches
        name = _dicom_name(found[0].resource) if found else f"PATIENT^{ipp}"
        spec = PhantomSpec(seed=seed, patient_id=ipp, patient_name=name,
                           **({} if seed == 1 else {"lesions": ()}))
        datasets = phantom_series(generate_phantom(spec))
        outcome = service.archive.store([_encoded(ds) for ds in datasets])
        scanned.append(len(outcome.stored))
        studies += outcome.studies
    quantified = service.jobs.run_due()
    service.archive.drain()
    readings = Readings(platform.engine, service.archive)
    for study_uid in studies:
        readings.assign(study_uid, READER, by="hygie demo")
    return (f"{len(scanned)} chest CT studies archived ({sum(scanned)} slices), "
            f"{quantified} quantified, on the worklist of {READER}")


def _encoded(dataset: Any) -> bytes:
    """A pydicom dataset as the bytes of a DICOM file."""
    from io import BytesIO

    out = BytesIO()
    dataset.save_as(out, enforce_file_format=True)
    return out.getvalue()
