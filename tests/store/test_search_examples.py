"""Every value the store indexes from the official examples finds its resource.

The search tests elsewhere pin each prefix and modifier on hand-made rows. This one
closes the loop over the whole corpus (707 resources of 140 types, some 11,000
values): for each index row extracted from an example, the search a client would
write for that value (``:exact`` for strings, ``system|code`` and ``:text`` for
tokens, ``:identifier`` for a reference given by identifier, ``Type/id``, the bounds
of dates, numbers and quantities with ``ge`` and ``le``) is run through the parser
and the compiler on a real database and must return the example. A parameter whose
expression, extraction and query disagree (an escaped comma, an open period, a
choice type) shows up here as a miss.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest

from hygie.store.schema import INDEX_TABLES
from hygie.store.search import extract_index
from hygie.store.search.params import registry
from tests.conftest import shared_data
from tests.store.test_search_compile import BASE, Store

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
#: Date bounds past these are the open ends of a period (no search value names them).
OPEN_LOW, OPEN_HIGH = -(10**16), 10**17


def escaped(value: str) -> str:
    """A value as written in a query string: ``\\``, ``,``, ``|`` and ``$`` escaped."""
    for char in ("\\", ",", "|", "$"):
        value = value.replace(char, "\\" + char)
    return value


def instant(us: int) -> str:
    return (EPOCH + dt.timedelta(microseconds=us)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def searches(res_type: str, kind: str, row: tuple[Any, ...]) -> list[tuple[str, str]]:
    """The (name, value) pairs a client would search this index row with."""
    param, *cols = row
    if kind == "string":
        return [(param + ":exact", escaped(cols[1])), (param, escaped(cols[1]))]
    if kind == "token":
        system, code, text = cols
        if registry().params(res_type)[param].type == "reference":
            param += ":identifier"  # Reference.identifier, written as a token row
        found = []
        if code is not None:
            found.append((param, escaped(code)))
            if system is not None:
                found.append((param, f"{escaped(system)}|{escaped(code)}"))
        if text and ":" not in param:
            found.append((param + ":text", escaped(text)))
        return found
    if kind == "reference":
        target_type, target_id, url = cols
        if target_type and target_id:
            return [(param, f"{target_type}/{target_id}")]
        # A bare name is searched as an id: see "Not supported" in docs/search.md.
        return [(param, escaped(url))] if url and ("/" in url or ":" in url) else []
    if kind == "uri":
        return [(param, escaped(cols[0]))]
    if kind == "date":
        low, high = cols
        return ([(param, "ge" + instant(low))] if low > OPEN_LOW else []) + (
            [(param, "le" + instant(high))] if high < OPEN_HIGH else [])
    if kind == "quantity":
        low, _high, system, code = cols
        return [(param, f"ge{low!r}|{escaped(system)}|{escaped(code)}")] if system and code else []
    if kind == "number":
        return [(param, f"ge{cols[0]!r}")]
    raise AssertionError(kind)


def examples() -> Iterator[dict[str, Any]]:
    seen = set()
    for path in sorted((shared_data() / "fhir-r4" / "examples").glob("*.json")):
        body = json.loads(path.read_text())
        key = (body.get("resourceType"), body.get("id"))
        if None not in key and key not in seen:
            seen.add(key)
            yield body


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    found = Store.empty(database_url)
    yield found
    found.engine.dispose()


def test_every_indexed_value_finds_its_example(store: Store) -> None:
    bodies = list(examples())
    for body in bodies:
        store.add(body)
    asked, missed = 0, []
    kinds: set[str] = set()
    for body in bodies:
        res_type, res_id = body["resourceType"], body["id"]
        for kind, rows in extract_index(body, BASE).items():
            for row in rows:
                for name, value in searches(res_type, kind, row):
                    asked += 1
                    kinds.add(kind)
                    query = urlencode({name: value, "_id": res_id})
                    if store.found(res_type, query) != {res_id}:
                        missed.append(f"{res_type}?{query}")
    assert len(bodies) > 700 and asked > 10_000
    assert kinds == set(INDEX_TABLES)
    assert missed == [], f"{len(missed)} of {asked} searches missed: {missed[:20]}"


def test_every_reference_between_examples_chains_and_includes(store: Store) -> None:
    """For each reference from one example to another, both ways across it work: the
    chain ``param:Type._id`` and ``_has`` find the two ends, ``_include`` and
    ``_revinclude`` bring the other end along.

    Left out: references to a type the parameter does not allow (a few examples have
    them; the store indexes them, the chain refuses the type with a 400) and references
    of a resource to itself (an include never repeats a match of the page).
    """
    bodies = {f"{body['resourceType']}/{body['id']}": body for body in examples()}
    for body in bodies.values():
        store.add(body)
    checked, missed = 0, []
    for key, body in bodies.items():
        res_type, res_id = key.split("/", 1)
        for param, target_type, target_id, _url in extract_index(body, BASE)["reference"]:
            target = f"{target_type}/{target_id}"
            if (target not in bodies or target == key
                    or target_type not in registry().params(res_type)[param].targets):
                continue
            checked += 1
            if res_id not in store.found(res_type, urlencode(
                    {f"{param}:{target_type}._id": target_id, "_id": res_id})):
                missed.append(f"chain {key} {param} {target}")
            if target_id not in store.found(target_type, urlencode(
                    {f"_has:{res_type}:{param}:_id": res_id, "_id": target_id})):
                missed.append(f"_has {key} {param} {target}")
            if target not in store.included(res_type, urlencode(
                    {"_id": res_id, "_include": f"{res_type}:{param}"})):
                missed.append(f"_include {key} {param} {target}")
            if key not in store.included(target_type, urlencode(
                    {"_id": target_id, "_revinclude": f"{res_type}:{param}"})):
                missed.append(f"_revinclude {key} {param} {target}")
    assert checked > 1000
    assert missed == [], f"{len(missed)} of {checked * 4} missed: {missed[:20]}"
