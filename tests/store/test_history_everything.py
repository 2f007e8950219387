"""History at every level with paging, and Patient/$everything."""

from __future__ import annotations

from starlette.testclient import TestClient


def test_history_levels_and_paging(client: TestClient) -> None:
    # Services may install resources of their own when the app starts (a shipped
    # Questionnaire, possibly a moment later): the system level counts only the types
    # this test writes.
    mine = ("/Patient/", "/Organization/")
    ids = []
    for n in range(5):
        ids.append(
            client.post(
                "/fhir/Patient", json={"resourceType": "Patient", "name": [{"family": f"H{n}"}]}
            ).json()["id"]
        )
    client.put(f"/fhir/Patient/{ids[0]}", json={"resourceType": "Patient", "id": ids[0]})
    client.post("/fhir/Organization", json={"resourceType": "Organization", "name": "GHT"})
    instance = client.get(f"/fhir/Patient/{ids[0]}/_history").json()
    assert [e["resource"]["meta"]["versionId"] for e in instance["entry"]] == ["2", "1"]
    type_level = client.get("/fhir/Patient/_history").json()
    assert len(type_level["entry"]) == 6
    system = client.get("/fhir/_history").json()
    assert len([e for e in system["entry"] if any(t in e["fullUrl"] for t in mine)]) == 7
    # paging with a stable cursor, even while writes happen between pages
    seen = []
    url = "/fhir/_history?_count=3"
    while url:
        page = client.get(url.replace("http://testserver", "")).json()
        seen += [
            (e["fullUrl"], e["response"]["etag"])
            for e in page.get("entry", [])
            if any(t in e["fullUrl"] for t in mine)
        ]
        nxt = [link["url"] for link in page["link"] if link["relation"] == "next"]
        url = nxt[0] if nxt else ""
        client.post("/fhir/Patient", json={"resourceType": "Patient"})  # newer; not in this walk
    assert len(seen) == 7 and len(set(seen)) == 7
    assert (
        client.get(f"/fhir/Patient/{ids[1]}/_history?_since=2100-01-01T00:00:00Z")
        .json()
        .get("entry")
        is None
    )
    assert client.get("/fhir/Patient/unknown/_history").status_code == 404


def test_patient_everything(client: TestClient) -> None:
    org = client.post(
        "/fhir/Organization", json={"resourceType": "Organization", "name": "CH Nord"}
    ).json()["id"]
    pid = client.post(
        "/fhir/Patient",
        json={
            "resourceType": "Patient",
            "managingOrganization": {"reference": f"Organization/{org}"},
        },
    ).json()["id"]
    other = client.post("/fhir/Patient", json={"resourceType": "Patient"}).json()["id"]
    for subject in (pid, pid, other):
        client.post(
            "/fhir/Observation",
            json={
                "resourceType": "Observation",
                "status": "final",
                "code": {"text": "Température"},
                "subject": {"reference": f"Patient/{subject}"},
            },
        )
    client.post(
        "/fhir/Condition",
        json={"resourceType": "Condition", "subject": {"reference": f"Patient/{pid}"}},
    )
    everything = client.get(f"/fhir/Patient/{pid}/$everything").json()
    types = sorted(e["resource"]["resourceType"] for e in everything["entry"])
    assert types == ["Condition", "Observation", "Observation", "Organization", "Patient"]
    assert everything["total"] == 5
    only_obs = client.get(f"/fhir/Patient/{pid}/$everything?_type=Observation").json()
    assert {e["resource"]["resourceType"] for e in only_obs["entry"]} == {"Observation"}
    paged = client.get(f"/fhir/Patient/{pid}/$everything?_count=2").json()
    assert len(paged["entry"]) == 2
    assert any(link["relation"] == "next" for link in paged["link"])
    assert client.get("/fhir/Patient/nobody/$everything").status_code == 404
