"""The OpenAPI 3.1 description of the platform's HTTP API: FHIR REST and OAuth.

Written by hand from the routes (``store/api.py``, ``security/api.py``, ``oauth.py``)
because they are generic (one FHIR endpoint serves every type) and no framework
derives it. It names what a client may send and what each answer may be, every error
included, so that a contract tester (schemathesis) can hold the server to it: no
answer outside the declared ones, and never a 5xx.
"""

from __future__ import annotations

from functools import cache
from typing import Any

#: Types the description lists for the FHIR paths (the server takes every R4 type).
DESCRIBED_TYPES = ["Patient", "Observation", "Encounter", "Condition", "Practitioner",
                   "Organization", "MedicationRequest", "DocumentReference", "AuditEvent"]

_FHIR = "application/fhir+json"
_PROBLEM = "application/problem+json"
_ERRORS = {"400": "invalid request", "401": "no or bad credentials",
           "403": "refused by scopes, roles or access rules", "404": "unknown type or resource",
           "405": "method not allowed here", "406": "only JSON is spoken",
           "409": "version conflict", "410": "deleted", "412": "precondition failed",
           "413": "too large or too costly", "415": "unsupported content type",
           "422": "unprocessable resource", "429": "rate limited"}


def _outcome(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {_FHIR: {"schema": {"$ref": "#/components/schemas/Resource"}}}}


def _fhir_responses(*success: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for code in success:
        if code in ("204", "304"):
            out[code] = {"description": "no body"}
        else:
            out[code] = _outcome("a FHIR resource or Bundle")
    out.update({code: _outcome(text) for code, text in _ERRORS.items()})
    return out


def _oauth_responses(*success: str) -> dict[str, Any]:
    out: dict[str, Any] = {code: {"description": "success",
                                  "content": {"application/json": {"schema": {"type": "object"}}}}
                           for code in success}
    for code in ("400", "401", "403", "413", "429"):
        out[code] = {"description": _ERRORS[code], "content": {
            "application/json": {"schema": {"type": "object"}},
            _PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}}}
    return out


def _param(name: str, where: str, schema: dict[str, Any], required: bool = False,
           description: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "in": where, "required": required, "schema": schema}
    if description:
        out["description"] = description
    return out


_TYPE = _param("type", "path", {"type": "string", "enum": DESCRIBED_TYPES}, True,
               "FHIR resource type")
_ID = _param("id", "path", {"type": "string", "pattern": "^[A-Za-z0-9.-]{1,64}$"}, True,
             "logical id")
_SEARCH = [
    _param("_count", "query", {"type": "integer", "minimum": 0, "maximum": 1000}),
    _param("_id", "query", {"type": "string"}),
    _param("_lastUpdated", "query", {"type": "string"}),
    _param("_sort", "query", {"type": "string"}),
    _param("_summary", "query", {"type": "string", "enum": ["true", "false", "count", "text",
                                                             "data"]}),
    _param("_total", "query", {"type": "string", "enum": ["none", "estimate", "accurate"]}),
    _param("name", "query", {"type": "string"}),
    _param("subject", "query", {"type": "string"}),
    _param("patient", "query", {"type": "string"}),
    _param("date", "query", {"type": "string"}),
    _param("code", "query", {"type": "string"}),
    _param("identifier", "query", {"type": "string"}),
]
_RESOURCE_BODY = {"required": True, "content": {_FHIR: {"schema": {
    "$ref": "#/components/schemas/Resource"}}}}
_FORM = "application/x-www-form-urlencoded"


@cache
def _paths() -> dict[str, Any]:
    bearer = [{"bearer": []}]
    return {
        "/fhir/metadata": {"get": {"summary": "CapabilityStatement", "security": [],
                                   "responses": _fhir_responses("200")}},
        "/fhir": {"post": {"summary": "batch or transaction Bundle", "security": bearer,
                           "requestBody": _RESOURCE_BODY,
                           "responses": _fhir_responses("200")}},
        "/fhir/{type}": {
            "parameters": [_TYPE],
            "get": {"summary": "search", "security": bearer, "parameters": _SEARCH,
                    "responses": _fhir_responses("200")},
            "post": {"summary": "create", "security": bearer, "requestBody": _RESOURCE_BODY,
                     "responses": _fhir_responses("200", "201")},
        },
        "/fhir/{type}/_search": {
            "parameters": [_TYPE],
            "post": {"summary": "search by form", "security": bearer,
                     "requestBody": {"required": False, "content": {_FORM: {"schema": {
                         "type": "object", "additionalProperties": {"type": "string"}}}}},
                     "responses": _fhir_responses("200")},
        },
        "/fhir/{type}/{id}": {
            "parameters": [_TYPE, _ID],
            "get": {"summary": "read", "security": bearer, "responses":
                    _fhir_responses("200", "304")},
            "put": {"summary": "update", "security": bearer, "requestBody": _RESOURCE_BODY,
                    "responses": _fhir_responses("200", "201")},
            "patch": {"summary": "JSON Patch", "security": bearer,
                      "requestBody": {"required": True, "content": {
                          "application/json-patch+json": {"schema": {
                              "type": "array", "items": {"type": "object"}}}}},
                      "responses": _fhir_responses("200")},
            "delete": {"summary": "delete", "security": bearer,
                       "responses": _fhir_responses("204")},
        },
        "/fhir/{type}/{id}/_history": {
            "parameters": [_TYPE, _ID],
            "get": {"summary": "instance history", "security": bearer,
                    "parameters": [_param("_count", "query", {"type": "integer", "minimum": 1,
                                                              "maximum": 1000})],
                    "responses": _fhir_responses("200")},
        },
        "/fhir/{type}/{id}/_history/{vid}": {
            "parameters": [_TYPE, _ID, _param("vid", "path", {"type": "string"}, True)],
            "get": {"summary": "vread", "security": bearer, "responses": _fhir_responses("200")},
        },
        "/fhir/Patient/{id}/$everything": {
            "parameters": [_ID],
            "get": {"summary": "a patient's record", "security": bearer,
                    "responses": _fhir_responses("200")},
        },
        "/oauth/token": {"post": {
            "summary": "token endpoint (client credentials, authorization code + PKCE, "
                       "refresh token)", "security": [{"basic": []}, {}],
            "requestBody": {"required": True, "content": {_FORM: {"schema": {
                "type": "object", "required": ["grant_type"], "properties": {
                    "grant_type": {"type": "string", "enum": [
                        "client_credentials", "authorization_code", "refresh_token"]},
                    "scope": {"type": "string"}, "code": {"type": "string"},
                    "redirect_uri": {"type": "string"}, "code_verifier": {"type": "string"},
                    "refresh_token": {"type": "string"}, "client_id": {"type": "string"},
                    "client_secret": {"type": "string"}}}}}},
            "responses": _oauth_responses("200")}},
        "/oauth/revoke": {"post": {
            "summary": "token revocation (RFC 7009)", "security": [{"basic": []}, {}],
            "requestBody": {"required": True, "content": {_FORM: {"schema": {
                "type": "object", "required": ["token"], "properties": {
                    "token": {"type": "string"}, "token_type_hint": {"type": "string"},
                    "client_id": {"type": "string"}, "client_secret": {"type": "string"}}}}}},
            "responses": {"200": {"description": "revoked, or nothing to revoke"},
                          **{k: v for k, v in _oauth_responses().items()}}}},
        "/oauth/userinfo": {"get": {"summary": "OpenID Connect userinfo", "security": bearer,
                                    "responses": _oauth_responses("200")}},
        "/.well-known/jwks.json": {"get": {"summary": "signing keys", "security": [],
                                           "responses": _oauth_responses("200")}},
        "/.well-known/smart-configuration": {"get": {"summary": "SMART discovery",
                                                     "security": [],
                                                     "responses": _oauth_responses("200")}},
        "/.well-known/openid-configuration": {"get": {"summary": "OpenID discovery",
                                                      "security": [],
                                                      "responses": _oauth_responses("200")}},
    }


def openapi_document(base_url: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document for a platform served at ``base_url``."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "Hygie", "version": "1",
                 "description": "FHIR R4 store and OAuth 2.0 / SMART App Launch endpoints "
                                "of the Hygie platform. Every error is an OperationOutcome "
                                "under /fhir and problem+json (RFC 9457) or an RFC 6749 "
                                "error elsewhere."},
        "servers": [{"url": base_url.rstrip("/")}],
        "paths": _paths(),
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "basic": {"type": "http", "scheme": "basic"},
            },
            "schemas": {
                "Resource": {"type": "object", "required": ["resourceType"],
                             "properties": {"resourceType": {"type": "string"}}},
                "Problem": {"type": "object", "required": ["status"], "properties": {
                    "type": {"type": "string"}, "title": {"type": "string"},
                    "status": {"type": "integer"}, "detail": {"type": "string"}}},
            },
        },
    }
