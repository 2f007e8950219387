"""The CapabilityStatement served at /fhir/metadata, built from what the code does.

It is generated from the same registries the server runs on (resource types, the
search parameters the search engine supports, the registered operations), so it
cannot claim a parameter or an operation that is not there
(http://hl7.org/fhir/R4/capabilitystatement.html).
"""

from __future__ import annotations

from typing import Any

import hygie
from hygie.store.model import format_instant, now_us

_INTERACTIONS = [
    "read",
    "vread",
    "update",
    "patch",
    "delete",
    "history-instance",
    "history-type",
    "create",
    "search-type",
]


def build_capability(
    base_url: str,
    resource_types: list[str],
    search_params: dict[str, list[dict[str, str]]],
    operations: list[dict[str, str]],
    token_url: str,
) -> dict[str, Any]:
    """A CapabilityStatement for this server.

    ``search_params`` maps a resource type to its supported parameters as
    ``{"name", "type", "definition"}``; ``operations`` lists ``{"name", "definition",
    "type"}`` where type is system, a resource type, or "*" for every type.
    """
    resources = []
    for res_type in resource_types:
        entry: dict[str, Any] = {
            "type": res_type,
            "interaction": [{"code": c} for c in _INTERACTIONS],
            "versioning": "versioned-update",
            "readHistory": True,
            "updateCreate": True,
            "conditionalCreate": True,
            "conditionalRead": "not-supported",
            "conditionalUpdate": True,
            "conditionalDelete": "single",
            "searchParam": search_params.get(res_type, []),
        }
        ops = [
            {"name": o["name"], "definition": o["definition"]}
            for o in operations
            if o["type"] in (res_type, "*")
        ]
        if ops:
            entry["operation"] = ops
        resources.append(entry)
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": format_instant(now_us())[:10],
        "publisher": "Hygie",
        "kind": "instance",
        "software": {"name": "Hygie", "version": hygie.__version__},
        "implementation": {"description": "Hygie FHIR R4 health-data store", "url": base_url},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "patchFormat": ["application/json-patch+json"],
        "rest": [
            {
                "mode": "server",
                "security": {
                    "cors": False,
                    "service": [
                        {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                                    "code": "SMART-on-FHIR",
                                }
                            ]
                        }
                    ],
                    "description": "Every request carries a bearer token signed by the platform; "
                    "SMART v2 scopes are enforced per resource type and interaction.",
                    "extension": [
                        {
                            "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                            "extension": [{"url": "token", "valueUri": token_url}],
                        }
                    ],
                },
                "resource": resources,
                "interaction": [
                    {"code": "transaction"},
                    {"code": "batch"},
                    {"code": "search-system"},
                    {"code": "history-system"},
                ],
                "searchParam": [
                    {
                        "name": "_id",
                        "type": "token",
                        "definition": "http://hl7.org/fhir/SearchParameter/Resource-id",
                    },
                    {
                        "name": "_lastUpdated",
                        "type": "date",
                        "definition": "http://hl7.org/fhir/SearchParameter/Resource-lastUpdated",
                    },
                ],
                "operation": [
                    {"name": o["name"], "definition": o["definition"]}
                    for o in operations
                    if o["type"] == "system"
                ],
            }
        ],
    }
