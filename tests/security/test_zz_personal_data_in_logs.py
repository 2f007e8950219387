"""No personal data in logs: the logs of the whole test run hold no demo patient's name.

The demo territory (``hygie demo``: seed 2020) is written and its patients are searched,
read, sent malformed requests and bad sign-ins that name them, with every logger of the
platform at INFO; then every log record of the run so far (``conftest.RUN_LOGS``, which
saw every package's tests) is searched for their names and national identifiers.
This test is put last in the run by ``conftest.pytest_collection_modifyitems``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from starlette.testclient import TestClient

from hygie.app import create_app
from hygie.security.tokens import issue_service_token
from hygie.store.seeding import seed_store
from hygie.store.server import open_store
from hygie.store.synthetic import generate_patient_resources, generate_territory
from tests.security.conftest import RUN_LOGS
from tests.security.territory import BASE, PATIENTS, make_platform

DEMO_SEED = 2020
DEMO_PATIENTS = 40


def _demo_people() -> list[tuple[str, str, list[str]]]:
    """(given, family, identifiers) of the demo patients."""
    territory = generate_territory(DEMO_SEED)
    people = []
    for resource in generate_patient_resources(DEMO_PATIENTS, territory=territory,
                                               seed=DEMO_SEED):
        if resource["resourceType"] != "Patient":
            continue
        name = (resource.get("name") or [{}])[0]
        people.append((" ".join(name.get("given", [])), name.get("family", ""),
                       [str(i.get("value")) for i in resource.get("identifier", [])]))
    return people


def _exercise(tmp_path: Path, people: list[tuple[str, str, list[str]]]) -> None:
    platform = make_platform(f"sqlite:///{tmp_path / 'h.db'}", tmp_path / "var")
    try:
        seed_store(open_store(platform).repository, patients=DEMO_PATIENTS, seed=DEMO_SEED)
        with TestClient(create_app(platform=platform), base_url=BASE,
                        raise_server_exceptions=False, follow_redirects=False) as http:
            http.headers["Authorization"] = "Bearer " + issue_service_token(
                platform, subject="log-check", scope="system/*.cruds")
            for given, family, identifiers in people[:15]:
                http.get("/fhir/Patient", params={"name": family, "given": given})
                http.get("/fhir/Patient", params={"family:bogus": family})  # refused
                http.get(f"/fhir/Patient/{family}")  # not an id that exists
                http.post("/fhir/Patient", json={"resourceType": "Patient",
                                                 "name": [{"family": family}],
                                                 "gender": given})  # invalid gender
                http.post("/fhir/Patient", content=f'{{"name": "{family}"',
                          headers={"Content-Type": "application/fhir+json"})
                for value in identifiers:
                    http.get("/fhir/Patient", params={"identifier": value})
                http.post("/login", data={"username": f"{given}.{family}",
                                          "password": family, "csrf_token": "x"})
                http.get(f"/record?name={family}", headers={"Accept": "text/html"})
    finally:
        platform.close()


def test_no_personal_data_in_the_logs(tmp_path: Path) -> None:
    people = _demo_people()
    assert len(people) >= 10
    logging.getLogger("hygie").info("log check: %d demo patients", len(people))
    _exercise(tmp_path, people)
    logs = "\n".join(RUN_LOGS.lines)
    assert "log check:" in logs  # the capture works
    found: list[str] = []
    for given, family, identifiers in people:
        for text in (f"{given} {family}", family if len(family) > 5 else None, *identifiers):
            if text and text in logs:
                found.append(text)
    for given, family, *_rest in PATIENTS.values():
        if family in logs or f"{given} {family}" in logs:
            found.append(family)
    assert not found, f"personal data in the logs: {sorted(set(found))[:10]}"


