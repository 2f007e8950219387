"""The patient record pages ("dossier patient"): views on bare resources, the pages over
HTTP on each database engine, and the whole flow in a real headless Chromium."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.testclient import TestClient

from hygie.app import create_app
from hygie.config import load_settings
from hygie.platform import Platform, open_platform
from hygie.security.model import Kind, Principal
from hygie.security.scopes import ScopeSet
from hygie.security.tokens import tokens_for
from hygie.security.users import create_user
from hygie.store.migrations import upgrade
from hygie.store.pages import SearchForm, parse_birthdate
from hygie.store.pages.display import age_text, format_when, phone_text, spaced_nir
from hygie.store.pages.record import DISCHARGE_SYSTEM, binary_id, patient_header, timeline
from hygie.store.pages.vitals import build_charts
from hygie.store.schema import metadata
from hygie.store.server import open_store
from tests.store import record_data as data

BASE = "http://testserver"
PASSWORD = "correct horse battery staple"
CHROMIUM = Path("/usr/bin/chromium")


# --- views on bare resources ----------------------------------------------------------


def test_times_are_shown_in_paris_at_their_recorded_precision() -> None:
    assert format_when("2020-03-18T06:40:00Z") == "18/03/2020 07:40"  # CET, UTC+1
    assert format_when("2020-07-01T12:00:00+00:00") == "01/07/2020 14:00"  # CEST, UTC+2
    assert format_when("2020-03-15") == "15/03/2020"
    assert format_when("2020-03") == "03/2020"
    assert format_when("2009") == "2009"
    assert format_when("yesterday") == "" and format_when(None) == ""


def test_ages_and_french_identifiers_read_as_clinicians_expect() -> None:
    assert age_text("1952-04-17", date(2020, 4, 16)) == "67 ans"
    assert age_text("1952-04-17", date(2020, 4, 17)) == "68 ans"
    assert age_text("2019-06-01", date(2020, 3, 1)) == "9 mois"
    assert age_text("2020-02-20", date(2020, 3, 1)) == "10 jours"
    assert spaced_nir(data.MARIE_INS) == "2 52 04 76 375 123 45"
    assert phone_text("+33612345678") == "06 12 34 56 78"
    hugo = next(r for r in data.population() if r["id"] == data.HUGO)
    assert not patient_header(hugo).adult and patient_header(data.marie_record()[0]).adult


def test_header_and_timeline_of_a_record() -> None:
    resources = data.marie_record()
    names = {"Location/ch-test-icu-101-a": "Réanimation - CH de Test · Lit 101-A",
             "Location/ch-test-emergency": "Urgences - CH de Test",
             "Organization/ch-test": "CH de Test"}
    header = patient_header(resources[0], names)
    assert header.name == "DUBOIS Marie-Claire" and header.gender == "Femme" and header.adult
    assert [(i.label, i.value) for i in header.identifiers] == [
        ("INS", "2 52 04 76 375 123 45"), ("IPP", "4000012345")]
    assert header.contacts[0].relationship == "Fille"
    encounters = timeline([r for r in resources if r["resourceType"] == "Encounter"], names)
    assert [e.title for e in encounters] == ["Admission en réanimation", "Passage aux urgences"]
    assert encounters[0].places[0].name == "Réanimation - CH de Test · Lit 101-A"
    assert encounters[0].start == "18/03/2020 12:00" and encounters[0].duration == "12 jours"
    assert encounters[1].duration == "4 h" and encounters[1].kind == "Urgences"


@pytest.mark.parametrize(("disposition", "shown"), [
    ({"coding": [{"system": DISCHARGE_SYSTEM, "code": "home", "display": "Home"}]},
     "Domicile"),
    ({"coding": [{"system": DISCHARGE_SYSTEM, "code": "exp"}]}, "Décès"),
    ({"coding": [{"system": DISCHARGE_SYSTEM, "code": "home"}], "text": "Retour chez sa fille"},
     "Retour chez sa fille"),
    ({"coding": [{"system": "urn:local", "code": "x", "display": "Transfert SSR"}]},
     "Transfert SSR"),
])
def test_where_a_stay_ended_reads_in_french(disposition: dict[str, object], shown: str) -> None:
    encounter = {"resourceType": "Encounter", "id": "e1", "status": "finished",
                 "class": {"code": "IMP"}, "hospitalization": {"dischargeDisposition": disposition}}
    assert timeline([encounter], {})[0].discharge == shown


def test_vital_sign_charts_count_points_and_flag_out_of_range_values() -> None:
    charts, missing = build_charts(data.marie_record())
    assert missing == []
    by_key = {c.key: c for c in charts}
    assert {k: c.n_points for k, c in by_key.items()} == data.CHART_POINTS
    assert {k: c.n_out for k, c in by_key.items()} == data.CHART_OUT
    pressure = by_key["blood-pressure"]
    assert [s.key for s in pressure.series] == ["systolic", "diastolic"]
    assert len(pressure.rows) == 3 and pressure.rows[0].cells == (("124", False), ("78", False))
    heart = by_key["heart-rate"]
    x0, y0, x1, y1 = heart.box
    assert all(x0 <= p.x <= x1 and y0 <= p.y <= y1 for p in heart.series[0].points)
    _, height = heart.series[0].band or (0, 0)
    assert height > 0 and heart.series[0].band_text == "normale 60 à 100 /min"
    # The highest value is drawn highest (SVG y grows downwards).
    highest = min(heart.series[0].points, key=lambda p: p.y)
    assert highest.value == "118" and highest.out
    assert by_key["weight"].series[0].band is None


def test_charts_show_a_period_and_break_lines_across_long_pauses() -> None:
    charts, _ = build_charts(data.marie_record())
    heart = next(c for c in charts if c.key == "heart-rate")
    # Readings on 18, 19, 20, 22, 25 then 29/03: the 4-day pause breaks the line.
    assert len(heart.series[0].lines) == 1
    assert len(heart.series[0].lines[0].split()) == 5
    # The last 7 days before the latest reading (29/03 08:20): 25 and 29/03 only.
    charts, missing = build_charts(data.marie_record(), days=7)
    heart = next(c for c in charts if c.key == "heart-rate")
    assert heart.n_points == 2 and "4 mesures plus anciennes" in heart.notes[0]
    assert "Poids (mesures antérieures à la période)" in missing


def test_charts_of_a_child_use_only_recorded_ranges_and_units_are_converted() -> None:
    observation = {"resourceType": "Observation", "status": "final",
                   "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
                   "effectiveDateTime": "2020-03-01T10:00:00Z",
                   "valueQuantity": {"value": 130, "code": "/min"}}
    charts, _ = build_charts([observation], adult=False)
    assert charts[0].series[0].band is None and charts[0].n_out == 0
    assert "mineur" in charts[0].notes[0]
    ranged = {**observation, "referenceRange": [{"low": {"value": 100}, "high": {"value": 160}}]}
    charts, _ = build_charts([ranged], adult=False)
    assert charts[0].series[0].band is not None and charts[0].n_out == 0
    fahrenheit = {**observation, "code": {"coding": [{"system": "http://loinc.org",
                                                      "code": "8310-5"}]},
                  "valueQuantity": {"value": 102.2, "code": "[degF]"}}
    erroneous = {**observation, "status": "entered-in-error"}
    charts, missing = build_charts([fahrenheit, erroneous])
    assert [c.key for c in charts] == ["temperature"] and "Fréquence cardiaque" in missing
    assert charts[0].series[0].points[0].value == "39,0" and charts[0].n_out == 1


def test_search_form_builds_a_fhir_query_and_refuses_bad_dates() -> None:
    form = SearchForm(name="Dubois, Marie", birthdate="17/04/1952",
                      identifier="2 52 04 76 375 123 45")
    assert form.query() == [("name", "Dubois"), ("name", "Marie"),
                            ("birthdate", "1952-04-17"), ("identifier", data.MARIE_INS)]
    assert SearchForm(name="a$b").query() == [("name", "a\\$b")]
    assert parse_birthdate("1952-04-17") == date(1952, 4, 17)
    for bad in ("31/02/1950", "hier", "1700-01-01"):
        with pytest.raises(ValueError):
            parse_birthdate(bad)


def test_attachment_urls_point_to_binaries_of_this_store_only() -> None:
    base = "http://testserver/fhir"
    assert binary_id("Binary/abc", base) == "abc"
    assert binary_id("http://testserver/fhir/Binary/abc", base) == "abc"
    assert binary_id("https://elsewhere.example/fhir/Binary/abc", base) is None
    assert binary_id("Patient/abc", base) is None and binary_id(None, base) is None


# --- the pages over HTTP ------------------------------------------------------------------


def _seeded_platform(database_url: str, var_dir: Path, base_url: str = BASE) -> Platform:
    platform = open_platform(load_settings(database_url=database_url, var_dir=var_dir,
                                           base_url=base_url))
    upgrade(platform.engine)
    metadata.create_all(platform.engine)  # account tables, until they have a migration
    repository = open_store(platform).repository
    for resource in data.population():
        repository.create(resource, res_id=resource["id"])
    return platform


@pytest.fixture
def seeded(database_url: str, tmp_path: Path) -> Iterator[Platform]:
    platform = _seeded_platform(database_url, tmp_path / "var")
    yield platform
    platform.close()


def _client(platform: Platform, scopes: str = "user/*.rs", *, kind: Kind = Kind.PRACTITIONER,
            patient: str | None = None) -> TestClient:
    """A browser-like client whose session cookie carries these scopes."""
    principal = Principal(subject="dr-test", kind=kind, scopes=ScopeSet.parse(scopes),
                          display="Dr Test", patient=patient)
    client = TestClient(create_app(platform=platform), base_url=BASE, follow_redirects=False)
    client.headers["Accept"] = "text/html"
    client.cookies.set("hygie_session", tokens_for(platform).issue_session(principal).token)
    return client


def test_search_by_name_birth_date_and_identifier(seeded: Platform) -> None:
    http = _client(seeded)
    page = http.get("/record", params={"name": "dubois"})
    assert page.status_code == 200
    assert re.search(r"<strong>2</strong> patients trouvés", page.text)
    assert page.text.count('data-patient="') == 2
    assert 'href="/record/patient/marie-dubois"' in page.text
    assert "2 52 04 76 375 123 45" in page.text
    assert "Dr Test" in page.text  # the layout shows who is signed in
    by_birth = http.get("/record", params={"birthdate": "1952-04-17"})
    assert by_birth.text.count('data-patient="') == 1 and "DUBOIS Marie-Claire" in by_birth.text
    by_ins = http.get("/record", params={"identifier": "2 52 04 76 375 123 45"})
    assert by_ins.text.count('data-patient="') == 1
    assert "Aucun patient ne correspond" in http.get("/record", params={"name": "zzz"}).text
    assert "Saisissez un nom" in http.get("/record").text
    bad = http.get("/record", params={"birthdate": "31/02/1950"})
    assert bad.status_code == 400 and 'role="alert"' in bad.text
    assert http.get("/record", params={"name": "martin", "cursor": "not-a-cursor"}
                    ).status_code == 400


def test_search_results_are_paged_with_the_store_cursor(seeded: Platform) -> None:
    http = _client(seeded)
    first = http.get("/record", params={"name": "martin"})
    assert re.search(r"<strong>23</strong> patients trouvés", first.text)
    assert first.text.count('data-patient="') == 20 and "résultats 1 à 20" in first.text
    next_url = re.search(r'href="([^"]+)" rel="next"', first.text)
    assert next_url is not None
    second = http.get(next_url.group(1).replace("&amp;", "&"))
    assert second.status_code == 200 and second.text.count('data-patient="') == 3
    assert "résultats 21 à 23" in second.text and 'rel="first"' in second.text
    assert 'rel="next"' not in second.text
    first_ids = set(re.findall(r'data-patient="([^"]+)"', first.text))
    assert first_ids.isdisjoint(re.findall(r'data-patient="([^"]+)"', second.text))


def test_record_page_shows_every_section(seeded: Platform) -> None:
    page = _client(seeded).get(f"/record/patient/{data.MARIE}")
    assert page.status_code == 200
    text = page.text
    assert "DUBOIS Marie-Claire" in text and "2 52 04 76 375 123 45" in text
    assert re.findall(r'data-encounter="([^"]+)"', text) == ["enc-icu", "enc-er"]
    assert "Réanimation - CH de Test · Lit 101-A" in text and "Urgences - CH de Test" in text
    assert "COVID-19" in text and "CIM-10 U07.1" in text and "Hypertension artérielle" in text
    assert "Allergie à la pénicilline" in text and "criticité élevée" in text
    assert "Ramipril 5 mg" in text and "5 mg le matin" in text
    assert re.findall(r'data-document="([^"]+)"', text) == ["doc-letter", "doc-summary"]
    points = dict(re.findall(r'data-chart="([^"]+)" data-points="(\d+)"', text))
    assert {k: int(v) for k, v in points.items()} == data.CHART_POINTS
    assert text.count('class="pt out"') == sum(data.CHART_OUT.values())
    assert 'id="withheld"' not in text
    week = _client(seeded).get(f"/record/patient/{data.MARIE}", params={"constantes": "7"})
    assert re.search(r'data-chart="heart-rate" data-points="2"', week.text)
    odd = _client(seeded).get(f"/record/patient/{data.MARIE}", params={"constantes": "x"})
    assert odd.status_code == 200 and re.search(r'data-chart="heart-rate" data-points="6"',
                                                odd.text)


def test_documents_open_from_inline_data_and_from_binaries(seeded: Platform) -> None:
    http = _client(seeded)
    inline = http.get(f"/record/patient/{data.MARIE}/documents/doc-summary/0")
    assert inline.status_code == 200 and inline.text == data.DISCHARGE_TEXT
    assert inline.headers["content-type"] == "text/plain; charset=utf-8"
    assert inline.headers["x-content-type-options"] == "nosniff"
    assert inline.headers["content-security-policy"].startswith("sandbox")
    binary = http.get(f"/record/patient/{data.MARIE}/documents/doc-letter/0")
    assert binary.status_code == 200 and binary.text == "Lettre de liaison."
    # A document is only served under the record it belongs to.
    assert http.get(f"/record/patient/{data.JEAN}/documents/doc-summary/0").status_code == 404
    assert http.get(f"/record/patient/{data.MARIE}/documents/doc-summary/3").status_code == 404
    assert http.get(f"/record/patient/{data.MARIE}/documents/nope/0").status_code == 404


def test_empty_record_unknown_and_deleted_patients(seeded: Platform) -> None:
    http = _client(seeded)
    empty = http.get(f"/record/patient/{data.HUGO}")
    assert empty.status_code == 200
    for message in ("Aucun séjour", "Aucun problème", "Aucune allergie", "Aucune prescription",
                    "Aucune constante", "Aucun document"):
        assert message in empty.text
    unknown = http.get("/record/patient/nobody-here")
    assert unknown.status_code == 404 and "Dossier introuvable" in unknown.text
    assert '<nav>' in unknown.text  # inside the layout, with the navigation
    assert http.get("/record/patient/" + "x" * 80).status_code == 404
    open_store(seeded).repository.delete("Patient", data.JEAN)
    gone = http.get(f"/record/patient/{data.JEAN}")
    assert gone.status_code == 410 and "supprimé" in gone.text


def test_permissions_give_clear_pages_not_crashes(seeded: Platform) -> None:
    no_patient = _client(seeded, "user/Observation.rs")
    for path in ("/record?name=dubois", f"/record/patient/{data.MARIE}",
                 f"/record/patient/{data.MARIE}/documents/doc-summary/0"):
        refused = no_patient.get(path)
        assert refused.status_code == 403, path
        assert "Accès refusé" in refused.text and "user/Patient" in refused.text
    partial = _client(seeded, "user/Patient.rs user/Encounter.rs").get(
        f"/record/patient/{data.MARIE}")
    assert partial.status_code == 200 and 'id="withheld"' in partial.text
    assert 'data-encounter="enc-icu"' in partial.text and "data-chart=" not in partial.text
    no_binary = _client(seeded, "user/Patient.rs user/DocumentReference.rs")
    assert no_binary.get(f"/record/patient/{data.MARIE}/documents/doc-letter/0"
                         ).status_code == 403
    signed_out = TestClient(create_app(platform=seeded), base_url=BASE, follow_redirects=False)
    redirect = signed_out.get("/record", headers={"Accept": "text/html"})
    assert redirect.status_code == 303 and redirect.headers["location"].startswith("/login")


def test_a_patient_session_only_opens_its_own_record(seeded: Platform) -> None:
    http = _client(seeded, "patient/*.rs", kind=Kind.PATIENT, patient=data.MARIE)
    assert http.get("/record").headers["location"] == f"/record/patient/{data.MARIE}"
    assert http.get(f"/record/patient/{data.MARIE}").status_code == 200
    assert http.get(f"/record/patient/{data.JEAN}").status_code == 403


# --- in a real browser ----------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Server:
    """The platform app served by a real uvicorn on a loopback port."""

    def __init__(self, app: Starlette, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                                    log_level="warning", lifespan="off",
                                                    ws="none"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> _Server:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.mark.browser
def test_search_and_read_a_record_in_chromium(tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent: install Debian's chromium package")
    from playwright.sync_api import sync_playwright

    port = _free_port()
    platform = _seeded_platform(f"sqlite:///{tmp_path / 'hygie.db'}", tmp_path / "var",
                                base_url=f"http://127.0.0.1:{port}")
    create_user(platform.engine, "dr.test", PASSWORD, display="Dr Test",
                kind=Kind.PRACTITIONER, scopes="user/*.rs")
    try:
        with _Server(create_app(platform=platform), port) as server, sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run"])
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 900},
                                        locale="fr-FR", timezone_id="Europe/Paris")
                page.goto(server.url + "/record")
                assert "/login" in page.url  # signed out: the real login page
                page.fill("#username", "dr.test")
                page.fill("#password", PASSWORD)
                page.click("button[type=submit]")
                page.wait_for_url(server.url + "/record")

                page.fill("#q-name", "Dubois Marie")
                page.click(".record-search button")
                page.wait_for_selector("#result-count")
                assert page.locator("table.patients tbody tr").count() == 1
                page.screenshot(path=str(tmp_path / "search.png"))
                page.click("text=DUBOIS Marie-Claire")
                page.wait_for_url(f"**/record/patient/{data.MARIE}")

                assert page.locator("#patient-name").inner_text() == "DUBOIS Marie-Claire"
                events = page.locator(".timeline .event h3").all_inner_texts()
                assert events == ["Admission en réanimation", "Passage aux urgences"]
                assert "Lit 101-A" in page.locator(".timeline").inner_text()
                for key, count in data.CHART_POINTS.items():
                    chart = page.locator(f'svg[data-chart="{key}"]')
                    assert chart.locator("circle.pt").count() == count, key
                    assert chart.locator("circle.pt.out").count() == data.CHART_OUT[key], key
                assert page.locator('svg[data-chart="heart-rate"] rect.band').count() == 1
                # The table fallback opens and holds the same values.
                page.click("#chart-heart-rate summary")
                assert page.locator("#chart-heart-rate table tbody tr").count() == 6
                page.screenshot(path=str(tmp_path / "record.png"), full_page=True)

                with page.expect_popup() as popup:
                    page.click('tr[data-document="doc-summary"] a')
                assert data.DISCHARGE_TEXT in popup.value.inner_text("body")
            finally:
                browser.close()
    finally:
        platform.close()
    assert (tmp_path / "record.png").stat().st_size > 10_000


def test_records_of_synthetic_patients_render_every_reading(tmp_path: Path) -> None:
    """Records as the demo generates them: every encounter listed, every vital sign drawn."""
    from hygie.store.synthetic import generate_patient_resources, generate_territory

    platform = _seeded_platform(f"sqlite:///{tmp_path / 'hygie.db'}", tmp_path / "var")
    try:
        repository = open_store(platform).repository
        territory = generate_territory(seed=3)
        for resource in territory:
            repository.create(resource, res_id=resource["id"])
        resources = list(generate_patient_resources(4, territory=territory, seed=3))
        for resource in resources:
            repository.create(resource, res_id=resource["id"])
        http = _client(platform)
        vital_category = "vital-signs"
        total = 0
        for patient in (r for r in resources if r["resourceType"] == "Patient"):
            mine = [r for r in resources
                    if (r.get("subject") or r.get("patient") or {}).get("reference")
                    == f"Patient/{patient['id']}"]
            page = http.get(f"/record/patient/{patient['id']}", params={"constantes": "tout"})
            assert page.status_code == 200
            shown = re.findall(r'data-encounter="([^"]+)"', page.text)
            assert sorted(shown) == sorted(r["id"] for r in mine
                                           if r["resourceType"] == "Encounter")
            vitals = [r for r in mine if r["resourceType"] == "Observation" and any(
                c.get("code") == vital_category for cat in r.get("category", [])
                for c in cat.get("coding", []))]
            expected = sum(len(r.get("component", [])) or 1 for r in vitals)
            drawn = sum(int(n) for n in re.findall(r'data-points="(\d+)"', page.text))
            assert drawn == expected, patient["id"]
            total += drawn
        assert total > 0
    finally:
        platform.close()
