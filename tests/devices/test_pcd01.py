"""PCD-01 parsing with the hl7 library: the corpus, and refusals that name the field."""

from __future__ import annotations

import pytest

from hygie.devices.errors import MessageRejected
from hygie.devices.pcd01 import hl7_time, parse_report
from hygie.devices.receipt import read_header
from tests.devices.corpus import (
    MONITOR_EUI,
    monitor,
    msh,
    obr,
    obx,
    pump,
    replace_segment,
    ventilator,
    waveform,
)


def parse(message: str):  # type: ignore[no-untyped-def]
    header, text = read_header(message.encode())
    return parse_report(header, text)


def test_monitor_hierarchy_readings_and_context() -> None:
    report = parse(monitor("M1"))
    assert report.patient.value == "0000000007"
    assert report.patient.authority == "HYGIE"
    assert report.patient_name == ("MARTIN", "Claire")
    assert report.bed is not None and report.bed.location_id == "ch-jeanne-sorel-icu-101-a"
    assert [n.path for n in report.devices] == [(1, 0, 0, 0), (1, 1, 0, 0), (1, 1, 1, 0)]
    assert len(report.readings) == 8
    hr = report.readings[0]
    assert (hr.code, hr.value, hr.unit, hr.status) == ("147842", 88.0, "/min", "preliminary")
    assert hr.time == "2026-03-21T07:15:00Z"
    assert hr.reference_range == "50-120" and hr.eui64 == "0012A1FFFE000A01"
    temp = report.readings[-1]
    assert (temp.value, temp.unit) == (38.9, "Cel")
    art = next(r for r in report.readings if r.code == "150035")
    assert art.flags == ("L",)


def test_ventilator_settings_and_pump_values() -> None:
    vent = parse(ventilator())
    units = {r.mnemonic: r.unit for r in vent.readings}
    assert units["MDC_VENT_PRESS_AWAY_END_EXP_POS"] == "cm[H2O]"
    assert units["MDC_VENT_VOL_TIDAL_SETTING"] == "mL"
    pumped = parse(pump())
    kinds = {r.mnemonic: (r.value_type, r.value, r.unit) for r in pumped.readings}
    assert kinds["MDC_FLOW_FLUID_PUMP"] == ("NM", 24.9, "mL/h")
    assert kinds["MDC_DRUG_NAME_TYPE"] == ("ST", "Noradrénaline", None)
    assert kinds["MDC_PUMP_STAT"][0] == "CWE"
    assert kinds["MDC_PUMP_STAT"][1]["display"] == "pump-status-infusing"
    assert len(pumped.devices) == 4


def test_waveform_period_from_its_sample_rate_facet() -> None:
    wave = parse(waveform()).readings
    assert len(wave) == 1
    assert wave[0].value == [0.12, 0.15, 0.9, 1.4, 0.3, -0.2, 0.05, 0.1]
    assert wave[0].period_ms == 4.0
    assert wave[0].facets[0][1] == "MDC_ATTR_SAMP_RATE"


def _rejection(message: str) -> MessageRejected:
    with pytest.raises(MessageRejected) as caught:
        parse(message)
    return caught.value


@pytest.mark.parametrize(
    ("change", "location", "code"),
    [
        (lambda m: replace_segment(m, "PID", "PID|||^^^HYGIE^PI||X^Y"), "PID[1]-3", 101),
        (
            lambda m: replace_segment(
                m,
                "OBX|4|",
                obx(
                    4,
                    "NM",
                    "147842^MDC_ECG_HEART_RATE^MDC",
                    "1.1.1.1",
                    "eighty",
                    "264864^MDC_DIM_BEAT_PER_MIN^MDC",
                ),
            ),
            "OBX[4]-5",
            102,
        ),
        (
            lambda m: replace_segment(
                m,
                "OBX|5|",
                obx(
                    5,
                    "NM",
                    "150456^MDC_PULS_OXIM_SAT_O2^MDC",
                    "1.2.1.1",
                    "97",
                    "999^MDC_DIM_FURLONG^MDC",
                ),
            ),
            "OBX[5]-6.1",
            103,
        ),
        (
            lambda m: replace_segment(
                m,
                "OBX|6|",
                obx(
                    6, "NM", "151562^MDC_RESP_RATE^MDC", "1.3.1.1", "19", "/min", when="2026-13-45"
                ),
            ),
            "OBX[6]-14",
            102,
        ),
        (
            lambda m: replace_segment(
                m,
                "OBX|7|",
                obx(7, "NM", "150021^MDC_PRESS_BLD_NONINV_SYS^MDC", "1.x.1.1", "128", "mm[Hg]"),
            ),
            "OBX[7]-4",
            102,
        ),
        (
            lambda m: replace_segment(
                m,
                "OBX|8|",
                obx(
                    8,
                    "NM",
                    "150022^MDC_PRESS_BLD_NONINV_DIA^MDC",
                    "1.4.1.2",
                    "76",
                    "mm[Hg]",
                    status="",
                ),
            ),
            "OBX[8]-11",
            101,
        ),
        (
            lambda m: replace_segment(
                replace_segment(
                    m,
                    "OBX|9|",
                    obx(
                        9,
                        "NM",
                        "150023^MDC_PRESS_BLD_NONINV_MEAN^MDC",
                        "1.4.1.3",
                        "93",
                        "mm[Hg]",
                        eui="",
                    ),
                ),
                "OBR",
                "OBR|1|X1|X1|182777000^monitoring^SCT",
            ),
            "OBX[9]-18",
            101,
        ),
        (
            lambda m: replace_segment(
                m,
                "OBX|10|",
                obx(10, "XX", "150035^MDC_PRESS_BLD_ART_MEAN^MDC", "1.5.1.3", "61", "mm[Hg]"),
            ),
            "OBX[10]-2",
            103,
        ),
        (
            lambda m: m.replace(
                "\rOBR|", "\rZZZ|\rOBX|1|NM|147842^MDC_ECG_HEART_RATE^MDC|1.1.1.1|1\rOBR|", 1
            ),
            "OBX[1]",
            100,
        ),
        (lambda m: waveform(rate=None), "OBX[2]-5", 101),
    ],
)
def test_content_errors_name_segment_and_field(change, location: str, code: int) -> None:  # type: ignore[no-untyped-def]
    exc = _rejection(change(monitor("E1")))
    assert exc.location == location
    assert exc.code == code
    assert not exc.reject


def test_obr_equipment_fallback_and_obr_time() -> None:
    message = monitor("F1").replace("||||0012A1FFFE000A01^^0012A1FFFE000A01^EUI-64", "||||")
    report = parse(message)
    assert {r.eui64 for r in report.readings} == {"0012A1FFFE000A01"}


def test_hl7_times() -> None:
    assert hl7_time("20260321081500", "Europe/Paris", "OBX", 1, 14) == "2026-03-21T07:15:00Z"
    assert hl7_time("20260721081500", "Europe/Paris", "OBX", 1, 14) == "2026-07-21T06:15:00Z"
    assert hl7_time("20260321081500.25-0500", "UTC", "OBX", 1, 14) == "2026-03-21T13:15:00.250Z"
    assert hl7_time("20260321", "UTC", "OBX", 1, 14) == "2026-03-21"


def test_effective_time_falls_back_to_obr7_then_msh7() -> None:
    # OBX-14 empty: OBR-7 (an hour after the OBX times of the corpus)
    no_obx_time = monitor("T1").replace("|||20260321081500+0100||||0012A1", "|||||||0012A1")
    no_obx_time = replace_segment(
        no_obx_time, "OBR", obr("T1", MONITOR_EUI, when="20260321091500+0100")
    )
    report = parse(no_obx_time)
    assert {r.time for r in report.readings} == {"2026-03-21T08:15:00Z"}
    # OBR-7 empty too: MSH-7, here a different time without an offset (Paris, summer)
    msh_only = replace_segment(no_obx_time, "OBR", "OBR|1|T1|T1|182777000^monitoring^SCT")
    msh_only = replace_segment(msh_only, "MSH", msh("T1", when="20260721101500"))
    report = parse(msh_only)
    assert report.message_time == "2026-07-21T08:15:00Z"
    assert {r.time for r in report.readings} == {"2026-07-21T08:15:00Z"}


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("F", "final"),
        ("R", "preliminary"),
        ("P", "preliminary"),
        ("C", "corrected"),
        ("D", "entered-in-error"),
        ("W", "entered-in-error"),
    ],
)
def test_result_status_becomes_observation_status(status: str, expected: str) -> None:
    message = replace_segment(
        monitor("S1"),
        "OBX|4|",
        obx(
            4,
            "NM",
            "147842^MDC_ECG_HEART_RATE^MDC",
            "1.1.1.1",
            "88",
            "264864^MDC_DIM_BEAT_PER_MIN^MDC",
            status=status,
        ),
    )
    hr = next(r for r in parse(message).readings if r.code == "147842")
    assert hr.status == expected


def test_first_pid3_repetition_with_a_value_and_its_authority() -> None:
    message = replace_segment(
        monitor("P1"), "PID", "PID|||~0000000042^^^CHJS^PI~1234^^^INS^NI||DURAND^Paul"
    )
    report = parse(message)
    assert (report.patient.value, report.patient.authority, report.patient.type_code) == (
        "0000000042",
        "CHJS",
        "PI",
    )
    assert report.patient_name == ("DURAND", "Paul")


def test_units_as_ucum_or_left_out() -> None:
    message = replace_segment(
        monitor("U1"),
        "OBX|7|",
        obx(7, "NM", "150021^MDC_PRESS_BLD_NONINV_SYS^MDC", "1.4.1.1", "128", "mm[Hg]^^UCUM"),
    )
    message = replace_segment(
        message, "OBX|11|", obx(11, "NM", "150364^MDC_TEMP_BODY^MDC", "1.6.1.1", "38.9", "")
    )
    units = {r.code: r.unit for r in parse(message).readings}
    assert units["150021"] == "mm[Hg]"
    assert units["150364"] == "Cel"  # no unit sent: the metric's own
    assert units["147842"] == "/min"


def test_no_bed_and_no_observation() -> None:
    report = parse(monitor("B1").replace("\rPV1||I|icu^101^a^ch-jeanne-sorel", ""))
    assert report.bed is None
    only_header = "\r".join(monitor("B2").split("\r")[:4])
    with pytest.raises(MessageRejected) as caught:
        parse(only_header)
    assert (caught.value.segment, caught.value.code) == ("OBX", 100)
