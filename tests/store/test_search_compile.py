"""Search compilation on real SQLite and PostgreSQL: every prefix, modifier, chain, _has,
include, sort and paging case, with rows written straight into the schema tables."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import pytest
from sqlalchemy import Engine, delete, insert, select, update

from hygie.platform import create_engine
from hygie.store.outcomes import FhirError
from hygie.store.schema import INDEX_TABLES, metadata, resource
from hygie.store.search import compartment_clause, compile_search, extract_index, parse_search
from hygie.store.search.compile import CompiledSearch

BASE = "https://fhir.example.org/r4"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
SCT = "http://snomed.info/sct"


@dataclass
class Store:
    """Just enough of a store to test search: write rows, run compiled queries."""

    engine: Engine
    clock: int = 1_600_000_000_000_000
    pks: dict[str, int] = field(default_factory=dict)

    @classmethod
    def empty(cls, database_url: str) -> Store:
        """A store with the resource and index tables and nothing in them."""
        engine = create_engine(database_url)
        metadata.create_all(engine, tables=[resource, *INDEX_TABLES.values()])
        return cls(engine)

    def add(self, body: dict[str, Any], *, last_updated: int | None = None) -> int:
        self.clock += 1_000_000
        with self.engine.begin() as conn:
            pk = conn.execute(insert(resource).values(
                res_type=body["resourceType"], res_id=body["id"], version=1,
                last_updated=last_updated if last_updated is not None else self.clock,
                deleted=False, body=json.dumps(body).encode(),
            )).inserted_primary_key[0]
            for kind, rows in extract_index(body, BASE).items():
                if rows:
                    table = INDEX_TABLES[kind]
                    names = [c.name for c in table.columns][2:]
                    conn.execute(insert(table), [
                        {"res_pk": pk, "res_type": body["resourceType"], **dict(zip(names, r,
                                                                                       strict=True))}
                        for r in rows
                    ])
        self.pks[f"{body['resourceType']}/{body['id']}"] = pk
        return int(pk)

    def delete(self, key: str) -> None:
        pk = self.pks[key]
        with self.engine.begin() as conn:
            for table in INDEX_TABLES.values():
                conn.execute(delete(table).where(table.c.res_pk == pk))
            conn.execute(update(resource).where(resource.c.pk == pk).values(deleted=True))

    def compiled(self, res_type: str | None, query: str) -> CompiledSearch:
        request = parse_search(res_type, parse_qsl(query), strict=True, base_url=BASE)
        return compile_search(request)

    def page(self, res_type: str | None, query: str, count: int = 100,
             cursor: str | None = None) -> tuple[list[str], str | None]:
        compiled = self.compiled(res_type, query)
        with self.engine.connect() as conn:
            rows = conn.execute(compiled.page_query(count, cursor)).all()
        keys = [f"{r.res_type}/{r.res_id}" for r in rows[:count]]
        return keys, compiled.next_cursor(rows[count - 1]) if len(rows) > count else None

    def ids(self, res_type: str | None, query: str) -> list[str]:
        keys, _ = self.page(res_type, query)
        return [k.split("/", 1)[1] if res_type else k for k in keys]

    def found(self, res_type: str | None, query: str) -> set[str]:
        return set(self.ids(res_type, query))

    def count(self, res_type: str | None, query: str) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(self.compiled(res_type, query).count_query()).scalar_one())

    def included(self, res_type: str, query: str,
                 iterate_from: list[str] | None = None) -> set[str]:
        compiled = self.compiled(res_type, query)
        with self.engine.connect() as conn:
            if iterate_from is None:
                page = conn.execute(compiled.page_query(100)).all()
                query_ = compiled.include_query([r.pk for r in page])
            else:
                query_ = compiled.include_query([self.pks[k] for k in iterate_from], iterate=True)
            if query_ is None:
                return set()
            return {f"{r.res_type}/{r.res_id}" for r in conn.execute(query_)}


def patient(pid: str, **members: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": pid, **members}


def observation(oid: str, code: tuple[str, str, str], subject: str | None,
                **members: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "resourceType": "Observation", "id": oid, "status": members.pop("status", "final"),
        "code": {"coding": [{"system": code[0], "code": code[1], "display": code[2]}]},
    }
    if subject is not None:
        body["subject"] = {"reference": subject}
    body.update(members)
    return body


HEART = (LOINC, "8867-4", "Heart rate")
TEMPERATURE = (LOINC, "8310-5", "Body temperature")
COVID = (SCT, "840539006", "COVID-19")


def seed(store: Store) -> None:
    store.add({"resourceType": "Organization", "id": "o1", "name": "CHU de Tours"})
    store.add({"resourceType": "Organization", "id": "o2", "name": "CH de Blois",
               "partOf": {"reference": "Organization/o1"}})
    store.add({"resourceType": "Practitioner", "id": "d1",
               "name": [{"family": "Bernard", "given": ["Luc"]}]})
    store.add({"resourceType": "Practitioner", "id": "d2",
               "name": [{"family": "Moreau", "given": ["Anne"]}]})
    store.add(patient("p1", gender="female", birthDate="1980-05-17", active=True,
                      name=[{"family": "Lefèvre", "given": ["Anne", "Sophie"]}],
                      identifier=[{"system": "urn:oid:1.2.250.1.213.1.4.8", "value": "111"}],
                      generalPractitioner=[{"reference": "Practitioner/d1"}],
                      managingOrganization={"reference": "Organization/o2"}))
    store.add(patient("p2", gender="male", birthDate="1975", deceasedBoolean=True,
                      name=[{"family": "Martin", "given": ["Jean"]}],
                      generalPractitioner=[{"reference": "Practitioner/d2"}]))
    store.add(patient("p3", gender="female", birthDate="1992-11",
                      name=[{"family": "Dubois", "given": ["Émilie"]}]))
    store.add(patient("p4", name=[{"text": "Marc Petit"}]))
    store.add({"resourceType": "Group", "id": "g1", "type": "person", "actual": True})
    store.add(observation("ob1", HEART, "Patient/p1",
                          valueQuantity={"value": 72, "unit": "/min", "system": UCUM,
                                         "code": "/min"},
                          effectiveDateTime="2021-03-04T10:00:00Z",
                          performer=[{"reference": "Practitioner/d1"}]))
    store.add(observation("ob2", TEMPERATURE, "Patient/p1",
                          valueQuantity={"value": 38.5, "unit": "°C", "system": UCUM,
                                         "code": "Cel"},
                          effectivePeriod={"start": "2021-03-01", "end": "2021-03-05"}))
    store.add(observation("ob3", HEART, f"{BASE}/Patient/p2", status="preliminary",
                          valueQuantity={"value": 110, "unit": "/min", "system": UCUM,
                                         "code": "/min"},
                          effectiveDateTime="2021-03-04"))
    store.add(observation("ob4", COVID, "Patient/p3", status="amended",
                          valueCodeableConcept={"text": "Positive"}, effectiveDateTime="2022",
                          performer=[{"identifier": {"system": "urn:oid:1.2.250.1.71",
                                                     "value": "10003"}}]))
    store.add(observation("ob5", HEART, "Group/g1"))
    store.add(observation("ob6", HEART, "https://other.example/fhir/Patient/x9",
                          status="cancelled"))
    store.add({"resourceType": "RiskAssessment", "id": "r1", "status": "final",
               "subject": {"reference": "Patient/p1"},
               "prediction": [{"probabilityDecimal": 0.25}]})
    store.add({"resourceType": "RiskAssessment", "id": "r2", "status": "final",
               "subject": {"reference": "Patient/p2"},
               "prediction": [{"probabilityRange": {"low": {"value": 0.1},
                                                    "high": {"value": 0.4}}}]})
    store.add({"resourceType": "RiskAssessment", "id": "r3", "status": "final",
               "subject": {"reference": "Patient/p3"},
               "prediction": [{"probabilityDecimal": 0.8}]})
    store.add({"resourceType": "ValueSet", "id": "vs1", "status": "active",
               "url": "http://example.org/fhir/ValueSet/a/b"})
    store.add({"resourceType": "ValueSet", "id": "vs2", "status": "active",
               "url": "http://example.org/fhir/ValueSet/a"})
    store.add({"resourceType": "ValueSet", "id": "vs3", "status": "draft"})
    store.add({"resourceType": "Provenance", "id": "pv1", "recorded": "2021-03-04T11:00:00Z",
               "target": [{"reference": "Observation/ob1"}], "agent": []})
    store.add({"resourceType": "Provenance", "id": "pv2", "recorded": "2021-03-04T11:00:00Z",
               "target": [{"reference": "Patient/p1"}], "agent": []})
    store.add({"resourceType": "Encounter", "id": "e1", "status": "in-progress",
               "class": {"code": "IMP"}, "subject": {"reference": "Patient/p1"},
               "period": {"start": "2021-03-01T08:00:00Z"}})
    store.add({"resourceType": "Encounter", "id": "e2", "status": "finished",
               "class": {"code": "AMB"}, "subject": {"reference": "Patient/p2"},
               "period": {"start": "2019-01-01", "end": "2019-01-02"}})


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    found = Store.empty(database_url)
    seed(found)
    yield found
    found.engine.dispose()


# --- string -----------------------------------------------------------------------------------


def test_string_starts_with_ignoring_case_and_accents(store: Store) -> None:
    assert store.found("Patient", "name=ann") == {"p1"}
    assert store.found("Patient", "name=LEFE") == {"p1"}
    assert store.found("Patient", "name=emilie") == {"p3"}
    assert store.found("Patient", "name=marc%20pe") == {"p4"}
    assert store.found("Patient", "name=ann,jean") == {"p1", "p2"}
    assert store.found("Patient", "name=ann&name=sophie") == {"p1"}
    assert store.found("Patient", "name=ann&name=jean") == set()
    assert store.found("Patient", "name=%25") == set()
    assert store.found("Patient", "family=_artin") == set()


def test_string_exact_and_contains(store: Store) -> None:
    assert store.found("Patient", "family:exact=Lefèvre") == {"p1"}
    assert store.found("Patient", "family:exact=lefèvre") == set()
    assert store.found("Patient", "family:exact=Lef") == set()
    assert store.found("Patient", "family:contains=EVR") == {"p1"}
    assert store.found("Patient", "family:contains=r") == {"p1", "p2"}


# --- token ------------------------------------------------------------------------------------


def test_token_forms(store: Store) -> None:
    assert store.found("Observation", "code=8867-4") == {"ob1", "ob3", "ob5", "ob6"}
    assert store.found("Observation", f"code={LOINC}|8310-5") == {"ob2"}
    assert store.found("Observation", f"code={SCT}|8310-5") == set()
    assert store.found("Observation", f"code={SCT}|") == {"ob4"}
    assert store.found("Observation", "code=|8867-4") == set()
    assert store.found("Patient", "gender=female") == {"p1", "p3"}
    assert store.found("Patient", "active=true") == {"p1"}
    assert store.found("Patient", "deceased=true") == {"p2"}
    assert store.found("Patient", "deceased=false") == {"p1", "p3", "p4"}
    assert store.found("Patient", "identifier=urn:oid:1.2.250.1.213.1.4.8|111") == {"p1"}
    assert store.found("Patient", "identifier=111") == {"p1"}


def test_token_text_not_and_missing(store: Store) -> None:
    assert store.found("Observation", "code:text=heart") == {"ob1", "ob3", "ob5", "ob6"}
    assert store.found("Observation", "code:text=rate") == {"ob1", "ob3", "ob5", "ob6"}
    assert store.found("Observation", "code:text=ate") == set()
    assert store.found("Patient", "gender:not=male") == {"p1", "p3", "p4"}
    assert store.found("Patient", "gender:not=male,female") == {"p4"}
    assert store.found("Patient", "gender:missing=true") == {"p4"}
    assert store.found("Patient", "gender:missing=false") == {"p1", "p2", "p3"}


def test_id_and_last_updated(store: Store) -> None:
    assert store.found("Patient", "_id=p1,p3") == {"p1", "p3"}
    assert store.found("Patient", "_id:not=p1") == {"p2", "p3", "p4"}
    late = store.add(patient("late"), last_updated=2_000_000_000_000_000)  # 2033-05-18
    assert late
    assert store.found("Patient", "_lastUpdated=gt2030") == {"late"}
    assert store.found("Patient", "_lastUpdated=2033-05") == {"late"}
    assert "late" not in store.found("Patient", "_lastUpdated=le2030")


# --- date -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2021-03-04", {"ob1", "ob3"}),
        ("2021-03", {"ob1", "ob2", "ob3"}),
        ("2021", {"ob1", "ob2", "ob3"}),
        ("eq2021-03-04T10:00:00Z", {"ob1"}),
        ("2021-03-04T11:00:00%2B01:00", {"ob1"}),
        ("ne2021-03-04", {"ob2", "ob4"}),
        ("gt2021-03-04", {"ob2", "ob4"}),
        ("lt2021-03-04", {"ob2"}),
        ("ge2021-03-04", {"ob1", "ob2", "ob3", "ob4"}),
        ("le2021-03-04", {"ob1", "ob2", "ob3"}),
        ("sa2021-03-03", {"ob1", "ob3", "ob4"}),
        ("sa2021-03-04", {"ob4"}),
        ("eb2021-03-05", {"ob1", "ob3"}),
        ("eb2021-03-01", set()),
        ("lt2021-03-04T10:00:00Z", {"ob2", "ob3"}),
        ("gt2021-03-04T10:00:00Z", {"ob2", "ob3", "ob4"}),
        ("2021-03-04,2022", {"ob1", "ob3", "ob4"}),
    ],
)
def test_date_prefixes_with_partial_dates_and_periods(store: Store, value: str,
                                                      expected: set[str]) -> None:
    assert store.found("Observation", f"date={value}") == expected


def test_dates_and_open_periods(store: Store) -> None:
    assert store.found("Patient", "birthdate=1980") == {"p1"}
    assert store.found("Patient", "birthdate=1975-06") == set()
    assert store.found("Patient", "birthdate=ge1975-06") == {"p1", "p2", "p3"}
    assert store.found("Patient", "birthdate=le1975-06") == {"p2"}
    assert store.found("Patient", "birthdate:missing=true") == {"p4"}
    assert store.found("Patient", "birthdate=ge1980&birthdate=lt1990") == {"p1"}
    # e1 has no end: it reaches every later date; e2 is a closed two days.
    assert store.found("Encounter", "date=gt2030") == {"e1"}
    assert store.found("Encounter", "date=2019") == {"e2"}
    assert store.found("Encounter", "date=lt2020") == {"e2"}
    assert store.found("Encounter", "date=ge2021-03-01") == {"e1"}


def test_approximate_dates_are_relative_to_now(store: Store) -> None:
    day = 86_400
    recent = time.gmtime(time.time() - 10 * day)
    store.add(observation("recent", HEART, "Patient/p1",
                          effectiveDateTime=time.strftime("%Y-%m-%d", recent)))
    near = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 11 * day))
    assert store.found("Observation", f"date=ap{near}") == {"recent"}
    assert store.found("Observation", f"date=eq{near}") == set()
    assert "ob4" not in store.found("Observation", "date=ap2020-01-01")


# --- number and quantity ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0.25", {"r1"}),
        ("0.250", {"r1"}),
        ("0.3", {"r1"}),
        ("ne0.25", {"r2", "r3"}),
        ("gt0.3", {"r2", "r3"}),
        ("lt0.2", {"r2"}),
        ("ge0.25", {"r1", "r2", "r3"}),
        ("le0.25", {"r1", "r2"}),
        ("sa0.5", {"r3"}),
        ("eb0.3", {"r1"}),
        ("ap0.8", {"r3"}),
        ("0.25,0.8", {"r1", "r3"}),
    ],
)
def test_number_prefixes(store: Store, value: str, expected: set[str]) -> None:
    assert store.found("RiskAssessment", f"probability={value}") == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("72", {"ob1"}),
        ("gt100", {"ob3"}),
        ("le80", {"ob1", "ob2"}),
        ("ne72", {"ob2", "ob3"}),
        (f"72|{UCUM}|/min", {"ob1"}),
        (f"38.5|{UCUM}|Cel", {"ob2"}),
        ("38.5||Cel", {"ob2"}),
        ("38.5||°C", {"ob2"}),
        (f"38.5|{UCUM}|°C", set()),
        (f"ge50|{UCUM}|/min", {"ob1", "ob3"}),
        ("ap100", {"ob3"}),
    ],
)
def test_quantity_prefixes_and_units(store: Store, value: str, expected: set[str]) -> None:
    assert store.found("Observation", f"value-quantity={value}") == expected


def test_missing_on_every_type(store: Store) -> None:
    assert store.found("RiskAssessment", "probability:missing=false") == {"r1", "r2", "r3"}
    assert store.found("Observation", "value-quantity:missing=true") == {"ob4", "ob5", "ob6"}
    assert store.found("ValueSet", "url:missing=true") == {"vs3"}
    assert store.found("Observation", "performer:missing=true") == {
        "ob2", "ob3", "ob4", "ob5", "ob6"
    }
    assert store.found("Practitioner", "name:missing=false") == {"d1", "d2"}


# --- reference and uri ------------------------------------------------------------------------


def test_references(store: Store) -> None:
    assert store.found("Observation", "subject=Patient/p1") == {"ob1", "ob2"}
    assert store.found("Observation", "subject=p1") == {"ob1", "ob2"}
    assert store.found("Observation", "subject:Patient=p1") == {"ob1", "ob2"}
    assert store.found("Observation", "subject:Group=p1") == set()
    assert store.found("Observation", "subject=Group/g1") == {"ob5"}
    assert store.found("Observation", "patient=g1") == set()
    assert store.found("Observation", "patient=p1,p2") == {"ob1", "ob2", "ob3"}
    # Written as an absolute URL on this base: a local reference.
    assert store.found("Observation", "subject=Patient/p2") == {"ob3"}
    assert store.found("Observation", f"subject={BASE}/Patient/p2") == {"ob3"}
    external = "https://other.example/fhir/Patient/x9"
    assert store.found("Observation", f"subject={external}") == {"ob6"}
    assert store.found("Observation", "performer:identifier=urn:oid:1.2.250.1.71|10003") == {
        "ob4"
    }
    assert store.found("Observation", "performer:identifier=10003") == {"ob4"}


def test_uris(store: Store) -> None:
    assert store.found("ValueSet", "url=http://example.org/fhir/ValueSet/a") == {"vs2"}
    assert store.found("ValueSet", "url:below=http://example.org/fhir/ValueSet/a") == {
        "vs1", "vs2"
    }
    assert store.found("ValueSet", "url:below=http://example.org/fhir/ValueSet/a/") == {"vs1"}
    assert store.found("ValueSet", "url:above=http://example.org/fhir/ValueSet/a/b/c") == {
        "vs1", "vs2"
    }
    assert store.found("ValueSet", "url:above=http://example.org/fhir/ValueSet/a") == {"vs2"}


# --- chains and _has --------------------------------------------------------------------------


def test_chains(store: Store) -> None:
    assert store.found("Observation", "subject:Patient.name=anne") == {"ob1", "ob2"}
    assert store.found("Observation", "subject.name=anne") == {"ob1", "ob2"}
    assert store.found("Observation", "patient.birthdate=1975") == {"ob3"}
    assert store.found("Observation", "subject:Patient.gender=male,female") == {
        "ob1", "ob2", "ob3", "ob4"
    }
    assert store.found("Observation", "subject:Patient.general-practitioner.name=bernard") == {
        "ob1", "ob2"
    }
    assert store.found("Patient", "organization.partof.name=chu") == {"p1"}
    assert store.found("RiskAssessment", "subject:Patient.name=jean&probability=gt0.3") == {"r2"}
    store.delete("Patient/p2")
    assert store.found("Observation", "patient.gender=male") == set()


def test_reverse_chains(store: Store) -> None:
    assert store.found("Patient", "_has:Observation:patient:code=8310-5") == {"p1"}
    assert store.found("Patient", "_has:Observation:subject:status=preliminary") == {"p2"}
    assert store.found("Patient", "_has:Observation:patient:code=8867-4") == {"p1", "p2"}
    assert store.found("Patient", "_has:RiskAssessment:subject:probability=gt0.5") == {"p3"}
    nested = "_has:Observation:patient:_has:Provenance:target:_id=pv1"
    assert store.found("Patient", nested) == {"p1"}
    assert store.found("Practitioner", "_has:Observation:performer:subject:Patient.name=anne") \
        == {"d1"}
    store.delete("Observation/ob2")
    assert store.found("Patient", "_has:Observation:patient:code=8310-5") == set()


# --- include and revinclude -------------------------------------------------------------------


def test_include(store: Store) -> None:
    query = "code=8867-4&_include=Observation:subject"
    assert store.included("Observation", query) == {"Patient/p1", "Patient/p2", "Group/g1"}
    typed = "code=8867-4&_include=Observation:subject:Patient"
    assert store.included("Observation", typed) == {"Patient/p1", "Patient/p2"}
    every = "_id=ob1&_include=Observation:*"
    assert store.included("Observation", every) == {"Patient/p1", "Practitioner/d1"}
    assert store.included("Observation", "_id=ob1") == set()
    store.delete("Patient/p2")
    assert store.included("Observation", query) == {"Patient/p1", "Group/g1"}


def test_revinclude_and_iterate(store: Store) -> None:
    assert store.included("Patient", "_id=p1&_revinclude=Provenance:target") == {
        "Provenance/pv2"
    }
    both = "_id=ob1&_revinclude=Provenance:target&_include=Observation:subject"
    assert store.included("Observation", both) == {"Provenance/pv1", "Patient/p1"}
    query = "_id=ob1&_include=Observation:subject&_include:iterate=Patient:general-practitioner"
    assert store.included("Observation", query) == {"Patient/p1"}
    assert store.included("Observation", query, iterate_from=["Patient/p1"]) == {
        "Practitioner/d1"
    }
    assert store.included("Observation", "_id=ob1&_include=Observation:subject",
                          iterate_from=["Patient/p1"]) == set()


# --- sorting and paging -----------------------------------------------------------------------


def test_sort_with_missing_values_last(store: Store) -> None:
    assert store.ids("Patient", "_sort=birthdate") == ["p2", "p1", "p3", "p4"]
    assert store.ids("Patient", "_sort=-birthdate") == ["p3", "p1", "p2", "p4"]
    assert store.ids("Patient", "_sort=family") == ["p3", "p1", "p2", "p4"]
    assert store.ids("Patient", "_sort=gender,-birthdate") == ["p3", "p1", "p2", "p4"]
    assert store.ids("Patient", "_sort=-gender,birthdate") == ["p2", "p1", "p3", "p4"]
    assert store.ids("Patient", "_sort=-_id") == ["p4", "p3", "p2", "p1"]
    assert store.ids("Patient", "_sort=-_lastUpdated") == ["p4", "p3", "p2", "p1"]
    assert store.ids("RiskAssessment", "_sort=-probability") == ["r3", "r2", "r1"]
    assert store.ids("RiskAssessment", "_sort=probability") == ["r2", "r1", "r3"]
    assert store.ids("Observation", "_sort=value-quantity&code=8867-4") == [
        "ob1", "ob3", "ob5", "ob6"
    ]
    # Descending compares the ends: the day 2021-03-04 ends after 10:00 that day.
    assert store.ids("Observation", "_sort=-date")[:4] == ["ob4", "ob2", "ob3", "ob1"]
    assert store.ids("Observation", "_sort=subject")[:2] == ["ob5", "ob1"]


@pytest.mark.parametrize(
    "sort", ["", "_sort=birthdate", "_sort=-birthdate", "_sort=gender,-family", "_sort=-_id",
             "_sort=family,_lastUpdated"],
)
def test_paging_one_by_one_gives_the_whole_order(store: Store, sort: str) -> None:
    for i in range(6):
        store.add(patient(f"x{i}", birthDate=f"19{50 + i % 3}", gender=["male", "female"][i % 2],
                          name=[{"family": f"F{i % 2}"}]))
    whole, _ = store.page("Patient", sort, count=100)
    paged: list[str] = []
    cursor = None
    while True:
        keys, cursor = store.page("Patient", sort, count=1, cursor=cursor)
        paged.extend(keys)
        if cursor is None:
            break
    assert paged == whole and len(whole) == 10


def test_paging_is_stable_while_resources_are_added(store: Store) -> None:
    for i in range(3):
        store.add(patient(f"old{i}", gender="female", birthDate=f"196{i}",
                          name=[{"family": f"Old{i}"}]))
    for query in ["gender=female", "_sort=birthdate", "_sort=-family"]:
        first, cursor = store.page("Patient", query, count=2)
        assert cursor is not None
        before_rest, _ = store.page("Patient", query, count=100, cursor=cursor)
        # Writers add patients that sort before, among and after the ones already shown.
        for i, year in enumerate(["1900", "1985", "2020"]):
            store.add(patient(f"new-{query}-{i}", gender="female", birthDate=year,
                              name=[{"family": ["Aaa", "Mmm", "Zzz"][i]}]))
        rest, _ = store.page("Patient", query, count=100, cursor=cursor)
        assert not set(rest) & set(first)
        old_rest = [k for k in rest if f"new-{query}" not in k]
        assert old_rest == before_rest
        whole, _ = store.page("Patient", query, count=100)
        assert [k for k in whole if k in first or k in old_rest] == first + old_rest


def test_cursors_are_checked(store: Store) -> None:
    _, cursor = store.page("Patient", "_sort=birthdate", count=1)
    assert cursor is not None and "=" not in cursor and "/" not in cursor
    with pytest.raises(FhirError) as caught:
        store.page("Patient", "_sort=family", count=1, cursor=cursor)
    assert caught.value.issues[0].expression == "_cursor"
    for bad in ["not-a-cursor", "W10", cursor[:-3], "é"]:
        with pytest.raises(FhirError):
            store.page("Patient", "_sort=birthdate", count=1, cursor=bad)


def test_count_and_deleted(store: Store) -> None:
    assert store.count("Observation", "code=8867-4") == 4
    assert store.count("Patient", "") == 4
    store.delete("Patient/p1")
    assert store.count("Patient", "") == 3
    assert "p1" not in store.found("Patient", "")


# --- searches across types --------------------------------------------------------------------


def test_system_search(store: Store) -> None:
    assert store.found(None, "_type=Patient,Practitioner&name=anne") == {
        "Patient/p1", "Practitioner/d2"
    }
    assert store.found(None, "_id=p1,d1,o1") == {"Patient/p1", "Practitioner/d1",
                                                 "Organization/o1"}
    assert store.found(None, "_type=Group") == {"Group/g1"}
    assert store.ids(None, "_type=Patient,Group&_sort=-_id") == [
        "Patient/p4", "Patient/p3", "Patient/p2", "Patient/p1", "Group/g1"
    ]


def test_compartment_clause(store: Store) -> None:
    query = select(resource.c.res_id).where(
        compartment_clause("Patient", "p1", ["subject", "patient", "performer"]),
        resource.c.res_type == "Observation",
    )
    with store.engine.connect() as conn:
        assert {r.res_id for r in conn.execute(query)} == {"ob1", "ob2"}


def test_values_are_bound_parameters(store: Store) -> None:
    compiled = store.compiled("Patient", "name=o'brien&birthdate=1980&_sort=family")
    statement = compiled.page_query(10)
    text = str(statement)
    assert "brien" not in text and "1980" not in text
    assert "o'brien" in statement.compile().params.values()


# --- how pages are driven ---------------------------------------------------------------------


def test_one_filter_pages_skip_duplicate_index_rows(store: Store) -> None:
    for i in range(4):
        body = observation(f"dup{i}", HEART, "Patient/p1")
        body["code"]["coding"].append({"system": "http://other.example", "code": "8867-4"})
        store.add(body)
    query = "code=8867-4"
    whole, _ = store.page("Observation", query, count=100)
    assert len(whole) == len(set(whole)) == 8
    paged: list[str] = []
    cursor = None
    while True:
        keys, cursor = store.page("Observation", query, count=3, cursor=cursor)
        paged.extend(keys)
        if cursor is None:
            break
    assert paged == whole
    assert store.count("Observation", query) == 8


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("code=8867-4&date=2021-03-04", {"ob1", "ob3"}),
        ("date=ge2021&date=lt2022&value-quantity=gt50", {"ob1", "ob3"}),
        ("code=8867-4&performer:missing=true", {"ob3", "ob5", "ob6"}),
        ("status:not=final&code=8867-4", {"ob3", "ob6"}),
        ("subject:Patient.name=anne&code=8310-5", {"ob2"}),
        ("code:text=heart&subject=Patient/p1", {"ob1"}),
        ("_id=ob1,ob2,ob3&patient=p1", {"ob1", "ob2"}),
        ("_lastUpdated=gt2000&code=8310-5", {"ob2"}),
    ],
)
def test_several_filters_whichever_drives(store: Store, query: str, expected: set[str]) -> None:
    assert store.found("Observation", query) == expected
    assert store.count("Observation", query) == len(expected)
    paged: list[str] = []
    cursor = None
    while True:
        keys, cursor = store.page("Observation", query, count=1, cursor=cursor)
        paged.extend(keys)
        if cursor is None:
            break
    assert {k.split("/")[1] for k in paged} == expected and len(paged) == len(expected)


def test_restrictions_apply_to_every_page(store: Store) -> None:
    request = parse_search("Observation", [("code", "8867-4")], strict=True)
    inside = compartment_clause("Patient", "p2", ["subject"])
    compiled = compile_search(request, restrict=[inside])
    with store.engine.connect() as conn:
        rows = conn.execute(compiled.page_query(10)).all()
        count = conn.execute(compiled.count_query()).scalar_one()
    assert [r.res_id for r in rows] == ["ob3"] and count == 1


@pytest.mark.parametrize(
    ("res_type", "query"),
    [
        ("Patient", "name=%25_%5C&family:contains=%25"),
        ("Patient", "_id=" + "x" * 80 + "&identifier=" + "y" * 300),
        ("Observation", "subject=Patient/" + "z" * 90 + "&code=" + "é" * 300),
        ("RiskAssessment", "probability=1e999&probability=lt-1e-999"),
        ("Observation", "value-quantity=ap0||&date=ap0001&date=eb9999-12-31"),
        ("Observation", "subject:identifier=|&code=|&code=a|"),
        ("ValueSet", "url:above=http://&url:below=" + "u" * 300),
        (None, "_id=p1&_lastUpdated=ne2020&_sort=-_lastUpdated"),
        ("Patient", "name=a%F4%8F%BF%BF,b%ED%9F%BF&family:contains=%F4%8F%BF%BF"),
    ],
)
def test_odd_values_run_on_both_engines(store: Store, res_type: str | None, query: str) -> None:
    compiled = store.compiled(res_type, query)
    with store.engine.connect() as conn:
        conn.execute(compiled.page_query(5)).all()
        conn.execute(compiled.count_query()).all()
