"""Test-site import and nearest queries, checked against a plain haversine scan."""

from __future__ import annotations

import numpy as np
import pytest
from starlette.testclient import TestClient

from hygie.tracing.engine import TracingService
from hygie.tracing.errors import InvalidRequest
from hygie.tracing.testsites import SiteFilter, SiteIndex, haversine_km, parse_csv
from tests.tracing.sites import sites_csv


def brute(index: SiteIndex, lat: float, lon: float, k: int,
          keep: object = lambda s: True) -> list[tuple[str, float]]:
    found = sorted((haversine_km(lat, lon, s.latitude, s.longitude), s.rs)
                    for s in index.sites if keep(s))  # type: ignore[operator]
    return [(rs, d) for d, rs in found[:k]]


def test_parse_both_separators_and_skip_bad_rows() -> None:
    text = sites_csv(20, delimiter=",")
    text += "x,,Broken site,addr,True,False,not-a-number,48.0,,,,,,,,\n"
    text += "y,,Far away,addr,True,False,200,48.0,,,,,,,,\n"
    sites, skipped = parse_csv(text)
    assert len(sites) == 20 and skipped == 2
    semi, _ = parse_csv(sites_csv(20))
    assert [s.rs for s in semi] == [s.rs for s in sites]
    assert isinstance(sites[0].do_prel, bool)
    with pytest.raises(InvalidRequest, match="missing columns"):
        parse_csv("a;b\n1;2\n")


def test_nearest_matches_the_haversine_scan() -> None:
    sites, _ = parse_csv(sites_csv(2000, seed=5))
    index = SiteIndex(sites)
    rng = np.random.default_rng(8)
    for _ in range(20):
        lat, lon = 43 + rng.random() * 7.5, -1.5 + rng.random() * 9
        got = [(s.rs, d) for s, d in index.nearest(lat, lon, 7)]
        want = brute(index, lat, lon, 7)
        assert [g[0] for g in got] == [w[0] for w in want]
        assert np.allclose([g[1] for g in got], [w[1] for w in want], atol=1e-6)


def test_filters() -> None:
    index = SiteIndex(parse_csv(sites_csv(1500, seed=6))[0])
    where = SiteFilter(antigenic=True, without_appointment=True, public="tout public")
    got = index.nearest(48.85, 2.35, 10, where)
    assert len(got) == 10
    for s, _ in got:
        assert s.do_antigenic and s.check_rdv == "Sans rendez-vous" and s.public == "Tout public"
    want = brute(index, 48.85, 2.35, 10, lambda s: s.do_antigenic and "Sans" in s.check_rdv
                 and s.public == "Tout public")
    assert [s.rs for s, _ in got] == [w[0] for w in want]
    assert index.nearest(48.85, 2.35, 5, SiteFilter(public="nobody")) == []
    with pytest.raises(InvalidRequest):
        index.nearest(91, 0, 5)


def test_import_and_query_over_http(client: TestClient, sqlite_service: TracingService) -> None:
    r = client.post("/tracing/api/staff/test-sites", content=sites_csv(300).encode("utf-8"))
    assert r.json() == {"imported": 300, "skipped": 0}
    r = client.get("/tracing/api/test-sites", params={"lat": 45.76, "lon": 4.84, "limit": 3,
                                                      "pcr": "true"})
    sites = r.json()["sites"]
    assert len(sites) == 3 and all(s["do_prel"] for s in sites)
    assert sites[0]["distance_km"] <= sites[1]["distance_km"] <= sites[2]["distance_km"]
    assert set(sites[0]) >= {"rs", "adresse", "latitude", "longitude", "mod_prel", "public",
                             "horaire", "check_rdv", "tel_rdv", "web_rdv", "do_prel",
                             "do_antigenic", "distance_km"}
    for params in ({"lat": "x", "lon": 1}, {"lat": 1, "lon": 1, "limit": 0},
                   {"lat": 1, "lon": 1, "pcr": "maybe"}, {"lon": 1}):
        bad = client.get("/tracing/api/test-sites", params=params)
        assert bad.status_code == 400
        assert bad.headers["content-type"] == "application/problem+json"
    assert client.get("/tracing/api/staff/stats").json()["test_sites"] == 300
