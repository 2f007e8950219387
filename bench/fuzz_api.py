"""Hostile and malformed requests against the whole platform: never a 5xx, never a crash.

Run: ``.venv/bin/python bench/fuzz_api.py [--requests 100000] [--seed 2020]``.

Hypothesis generates requests (``@given`` with only its generation phase, so that the
run goes on after a finding and counts everything) and sends each one through the
whole ASGI application in-process: edge protection, authentication, every route of
the platform. Half of them carry a valid token, the others a forged, expired, truncated
or absent one. What is generated:

* methods, including unusual ones, and paths built from FHIR-looking segments (types,
  ids, ``_history``, ``$operations``), traversal (``../``), percent-encodings, NUL and
  control characters, very long segments, and the platform's other routes;
* query strings: FHIR search parameters with modifiers, prefixes, chains, ``_include``,
  ``_count`` of every size, SQL and script injection strings, broken escapes;
* headers: content types, ``If-Match``/``If-None-Exist``/``Prefer`` values, cookies,
  ``Origin``, enormous and binary values;
* bodies: random bytes, invalid UTF-8, truncated and deeply nested JSON, huge numbers,
  FHIR resources with mutated fields, Bundles of mixed entries, JSON Patch documents,
  OAuth forms.

Printed: the number of requests, requests per second, the count of each status class,
of 5xx answers and of crashes (an exception out of the application), with the first
few reproductions of any 5xx or crash. The goal of the issue is >= 100,000 requests,
0 answers 5xx and 0 crashes.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any
from urllib.parse import quote

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from hygie.app import create_app
from hygie.config import load_settings
from hygie.platform import open_platform
from hygie.security.tokens import issue_service_token
from hygie.store.migrations import upgrade

TYPES = ["Patient", "Observation", "Encounter", "Bundle", "Binary", "AuditEvent", "Group",
         "Practitioner", "NotAType", "patient", "Patient ", "Obs%00ervation"]
SEGMENTS = ["_history", "_search", "$everything", "$export", "$import", "$validate",
            "$export-status", "metadata", "..", ".", "%2e%2e", "%00", "a" * 300, "1", "p1",
            "é", "\u202e", "%ff%fe", "$", "_", "_history/1", "$export-file"]
OTHER_PATHS = ["/", "/login", "/login/totp", "/logout", "/oauth/token", "/oauth/authorize",
               "/oauth/revoke", "/oauth/userinfo", "/.well-known/jwks.json",
               "/.well-known/smart-configuration", "/.well-known/openid-configuration",
               "/openapi.json", "/record", "/record/patient/p1", "/security/acces/p1",
               "/security/urgence", "/security/relecture", "/static/hygie.css",
               "/static/../../etc/passwd", "/tracing", "/mobility", "/epidemic", "/devices",
               "/imaging", "/scheduling", "/channels", "/fhir", "/fhir/"]
PARAMS = ["name", "family", "birthdate", "_id", "_count", "_sort", "_include", "_revinclude",
          "_has:Observation:subject:code", "subject", "subject:Patient.name", "code",
          "date", "value-quantity", "_summary", "_elements", "_total", "_lastUpdated",
          "identifier", "_cursor", "_format", "_type", "_since", "_outputFormat",
          "name:exact", "name:contains", "code:text", "code:not", "date:missing",
          "general-practitioner", "_pretty", "response_type", "client_id", "redirect_uri",
          "code_challenge", "scope", "next", "patient", "constantes"]
NASTY = ["' OR 1=1 --", "<script>alert(1)</script>", "%", "\\", "\\,", "|", "$", "ge2020",
         "eq", "1e309", "-0", "9" * 400, "NaN", "ap1/1/1", "Patient/../Patient/1", "\x00",
         "é" * 50, "null", "[]", "{}", "true", "2020-13-45", "1:2:3", "gs1|x|y", "*",
         ":iterate", "Observation:subject:Patient", "-family,given", "0", "-1",
         "999999999999999999999", "http://evil.example/", "//evil.example", "/\\evil"]
CONTENT_TYPES = ["application/fhir+json", "application/json", "application/json-patch+json",
                 "application/x-www-form-urlencoded", "application/fhir+ndjson", "text/xml",
                 "multipart/form-data; boundary=x", "", "application/fhir+json; charset=latin1",
                 "*/*", "application/octet-stream"]
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE", "PROPFIND"]

json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                      st.text(max_size=30), st.sampled_from(NASTY))
json_value = st.recursive(json_leaf, lambda inner: st.one_of(
    st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=12), inner, max_size=5)),
    max_leaves=30)


_FIELDS = ["id", "meta", "name", "subject", "status", "code", "valueQuantity", "birthDate",
           "gender", "entry", "type", "contained", "extension", "identifier", "text"]
_FIELD_VALUES = st.one_of(json_value, st.sampled_from([
    {"reference": "Patient/p1"}, [{"family": "Dupont", "given": ["Ann"]}],
    "final", {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
    [{"resource": {"resourceType": "Patient"}, "request": {"method": "POST", "url": "Patient"}}],
    "transaction", "batch", {"value": 1e308}]))
_TYPE = st.sampled_from(TYPES)
_FIELD_NAMES = st.lists(st.sampled_from(_FIELDS), max_size=6, unique=True)


@st.composite
def resources(draw: Any) -> Any:
    """FHIR-looking resources with some fields broken."""
    body: dict[str, Any] = {"resourceType": draw(_TYPE)}
    for name in draw(_FIELD_NAMES):
        body[name] = draw(_FIELD_VALUES)
    return body


def deep(depth: int) -> bytes:
    return b'{"resourceType":"Patient","extension":' + b"[" * depth + b"]" * depth + b"}"


bodies = st.one_of(
    st.just(b""),
    st.binary(max_size=200),
    st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
    resources().map(lambda r: json.dumps(r).encode()),
    resources().map(lambda r: json.dumps(r).encode()[: len(json.dumps(r)) // 2]),
    st.integers(1, 3000).map(deep),
    st.lists(st.fixed_dictionaries({"op": st.sampled_from(["add", "remove", "replace", "move",
                                                            "copy", "test", "bogus"]),
                                    "path": st.sampled_from(["/", "/id", "/name/0",
                                                             "/resourceType", "~1", ""]),
                                    "value": json_value}), max_size=4)
    .map(lambda ops: json.dumps(ops).encode()),
    st.dictionaries(st.sampled_from(["grant_type", "client_id", "client_secret", "code",
                                     "code_verifier", "refresh_token", "scope", "username",
                                     "password", "csrf_token", "token", "redirect_uri"]),
                    st.one_of(st.text(max_size=40), st.sampled_from(NASTY)), max_size=6)
    .map(lambda form: "&".join(f"{quote(k)}={quote(v)}" for k, v in form.items()).encode()),
)


_METHOD = st.sampled_from(METHODS)
_SEGMENTS = st.lists(st.one_of(st.sampled_from(SEGMENTS), st.text(max_size=20)), max_size=4)
_OTHER = st.sampled_from(OTHER_PATHS)
_TAIL = st.one_of(st.just(""), st.sampled_from(["/x", "/..", "/%00", "//", "/" + "b" * 500]))
_PAIRS = st.lists(st.tuples(st.one_of(st.sampled_from(PARAMS), st.text(max_size=10)),
                            st.one_of(st.sampled_from(NASTY), st.text(max_size=30))),
                  max_size=5)
_RAW_QUERY = st.sampled_from(["%ff", "%", "a=%zz", "=&=", "&&&", "x=1%00"])
_CTYPE = st.sampled_from(CONTENT_TYPES)
_HEADER_CHOICES = [
    ("if-match", st.sampled_from(['W/"1"', "x", '"', 'W/"99999999999999999999"'])),
    ("if-none-exist", st.sampled_from(["identifier=a|b", "", "%%", "_id=1&_id=2"])),
    ("prefer", st.sampled_from(["return=minimal", "return=representation", "handling=strict",
                                "respond-async", "return="])),
    ("accept", st.sampled_from(["application/fhir+json", "text/html", "application/xml",
                                "*/*", ""])),
    ("origin", st.sampled_from(["https://evil.example", "http://fuzz", "null"])),
    ("cookie", st.sampled_from(["hygie_session=x", "hygie_session=" + "a" * 9000,
                                "hygie_csrf=a; hygie_mfa=b", "=;;="])),
]
_QUARTER = st.integers(0, 3)
_AUTH = st.sampled_from(["valid", "valid", "none", "forged", "garbage", "basic"])


@st.composite
def requests(draw: Any) -> tuple[str, str, bytes, list[tuple[bytes, bytes]], bytes, str]:
    method = draw(_METHOD)
    if draw(st.booleans()):
        path = "/fhir/" + "/".join([draw(_TYPE), *draw(_SEGMENTS)])
    else:
        path = draw(_OTHER) + draw(_TAIL)
    pairs = draw(_PAIRS)
    query = "&".join(f"{quote(k, safe=':')}={quote(v, safe=',|$')}" for k, v in pairs)
    if draw(st.booleans()):  # sometimes raw, undecodable bytes in the query
        query += "&" + draw(_RAW_QUERY)
    headers = [(b"host", b"fuzz")]
    ctype = draw(_CTYPE)
    if ctype:
        headers.append((b"content-type", ctype.encode()))
    for name, values in _HEADER_CHOICES:
        if draw(_QUARTER) == 0:
            headers.append((name.encode(), draw(values).encode("latin-1")))
    body = draw(bodies)
    auth = draw(_AUTH)
    return method, path, query.encode("utf-8", "surrogatepass"), headers, body, auth


class Fuzzer:
    """Sends generated requests to the app and keeps the tally."""

    def __init__(self, app: Any, tokens: dict[str, str]) -> None:
        self.app = app
        self.tokens = tokens
        self.statuses: collections.Counter[int] = collections.Counter()
        self.server_errors: list[str] = []
        self.crashes: list[str] = []
        self.loop = asyncio.new_event_loop()

    def send(self, request: tuple[str, str, bytes, list[tuple[bytes, bytes]], bytes, str]
             ) -> None:
        method, path, query, headers, body, auth = request
        headers = list(headers)
        if auth in self.tokens:
            headers.append((b"authorization", self.tokens[auth].encode("latin-1")))
        if body:
            headers.append((b"content-length", str(len(body)).encode()))
        scope = {"type": "http", "method": method, "path": path,
                 "raw_path": path.encode("utf-8", "surrogatepass"), "query_string": query,
                 "headers": headers, "scheme": "http", "http_version": "1.1",
                 "client": ("10.0.0.1", 50000), "server": ("fuzz", 80), "root_path": ""}
        status = 0
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        try:
            self.loop.run_until_complete(asyncio.wait_for(self.app(scope, receive, send), 30))
        except Exception:
            if len(self.crashes) < 10:
                self.crashes.append(f"{method} {path}?{query[:200]!r}\n{traceback.format_exc()}")
            else:
                self.crashes.append("")
            return
        self.statuses[status // 100 * 100] += 1
        if status >= 500 or status == 0:
            if len(self.server_errors) < 10:
                self.server_errors.append(f"{status} {method} {path}?{query[:300]!r} "
                                          f"body={body[:200]!r} auth={auth}")
            else:
                self.server_errors.append("")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=2020)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings_ = load_settings(database_url=f"sqlite:///{Path(tmp) / 'h.db'}",
                                  var_dir=Path(tmp) / "var", base_url="http://fuzz",
                                  rate_per_address=1e9, burst_per_address=10**9,
                                  rate_per_client=1e9, burst_per_client=10**9,
                                  login_rate_per_minute=10**9)
        platform = open_platform(settings_)
        upgrade(platform.engine)
        app = create_app(platform=platform)
        repo = platform.parts["store"].repository
        repo.create({"resourceType": "Patient", "name": [{"family": "Fuzz"}]}, res_id="p1")
        repo.create({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                     "subject": {"reference": "Patient/p1"}}, res_id="o1")
        valid = issue_service_token(platform, subject="fuzz", scope="system/*.cruds")
        tokens = {"valid": "Bearer " + valid, "forged": "Bearer " + valid[:-6] + "AAAAAA",
                  "garbage": "Bearer \x00\xff" + "x" * 50, "basic": "Basic Zm9vOmJhcg=="}
        fuzzer = Fuzzer(app, tokens)

        @seed(args.seed)
        @given(request=requests())
        @settings(max_examples=args.requests, phases=[Phase.generate], database=None,
                  deadline=None, suppress_health_check=list(HealthCheck))
        def run(request: Any) -> None:
            fuzzer.send(request)

        started = time.perf_counter()
        run()
        elapsed = time.perf_counter() - started
        platform.close()
    total = sum(fuzzer.statuses.values()) + len(fuzzer.crashes)
    print(f"# {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, seed {args.seed}")
    print(f"fuzz_requests: {total:,} requests in {elapsed:.0f} s "
          f"({total / elapsed:,.0f} req/s)")
    print("fuzz_statuses: " + ", ".join(f"{k // 100}xx {v:,}" for k, v in
                                        sorted(fuzzer.statuses.items())))
    print(f"fuzz_server_errors: {len(fuzzer.server_errors)} (goal 0)")
    print(f"fuzz_crashes: {len(fuzzer.crashes)} (goal 0)")
    for line in [*fuzzer.server_errors, *fuzzer.crashes][:10]:
        if line:
            print("  " + line.replace("\n", "\n  "))
    if fuzzer.server_errors or fuzzer.crashes:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
