"""Every official R4 example is accepted by the store and read back equal (modulo meta)."""

from __future__ import annotations

import json
from typing import Any

from starlette.testclient import TestClient

from tests.conftest import shared_data


def _without_store_meta(resource: dict[str, Any]) -> dict[str, Any]:
    out = dict(resource)
    meta = {
        k: v
        for k, v in (out.pop("meta", None) or {}).items()
        if k not in ("versionId", "lastUpdated")
    }
    if meta:
        out["meta"] = meta
    return out


#: Not example resources: the package manifest, and the package's ImplementationGuide
#: index, which lacks the 1..1 elements ImplementationGuide.name and .status.
NOT_EXAMPLES = {"package.json", "ig-r4.json"}


def test_every_example_round_trips(client: TestClient) -> None:
    folder = shared_data() / "fhir-r4" / "examples"
    files = sorted(p for p in folder.glob("*.json") if p.name not in NOT_EXAMPLES)
    assert len(files) > 700
    failures = []
    for path in files:
        resource = json.loads(path.read_text())
        res_type, res_id = resource["resourceType"], resource["id"]
        resp = client.put(f"/fhir/{res_type}/{res_id}", json=resource)
        if resp.status_code not in (200, 201):
            failures.append(f"{path.name}: {resp.status_code} {resp.text[:300]}")
            continue
        back = client.get(f"/fhir/{res_type}/{res_id}").json()
        if _without_store_meta(back) != _without_store_meta(resource):
            failures.append(f"{path.name}: read back differs")
    assert not failures, "\n".join(failures)


def test_the_package_index_is_refused_precisely(client: TestClient) -> None:
    index = json.loads((shared_data() / "fhir-r4" / "examples" / "ig-r4.json").read_text())
    resp = client.put(f"/fhir/ImplementationGuide/{index['id']}", json=index)
    assert resp.status_code == 422
    errors = [i["expression"][0] for i in resp.json()["issue"] if i["severity"] == "error"]
    assert sorted(errors) == ["ImplementationGuide.name", "ImplementationGuide.status"]
