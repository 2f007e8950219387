"""The codes the gateway maps: MDC metrics to LOINC, MDC or UCUM units to UCUM, ranges."""

from __future__ import annotations

import pytest

from hygie.devices.fhir import mdc_concept
from hygie.devices.terminology import (
    LOINC_SYSTEM,
    MDC_SYSTEM,
    METRICS_BY_KEY,
    SETTING_OFFSET,
    UnknownUnit,
    metric_for,
    out_of_range,
    to_ucum,
)

# Every metric the gateway is asked to carry LOINC for: the common vitals, then the
# ventilator's FiO2, PEEP, tidal volume and rates, measured and set.
VITALS = [
    ("147842", "MDC_ECG_HEART_RATE", ["8867-4"]),
    ("150456", "MDC_PULS_OXIM_SAT_O2", ["2708-6", "59408-5"]),
    ("151562", "MDC_RESP_RATE", ["9279-1"]),
    ("150021", "MDC_PRESS_BLD_NONINV_SYS", ["8480-6"]),
    ("150022", "MDC_PRESS_BLD_NONINV_DIA", ["8462-4"]),
    ("150023", "MDC_PRESS_BLD_NONINV_MEAN", ["8478-0"]),
    ("150033", "MDC_PRESS_BLD_ART_SYS", ["76215-3"]),
    ("150034", "MDC_PRESS_BLD_ART_DIA", ["76213-8"]),
    ("150035", "MDC_PRESS_BLD_ART_MEAN", ["76214-6"]),
    ("150364", "MDC_TEMP_BODY", ["8310-5"]),
    ("152196", "MDC_CONC_AWAY_O2_INSP", ["3150-0"]),
    ("151976", "MDC_VENT_PRESS_AWAY_END_EXP_POS", ["76248-4"]),
    ("151980", "MDC_VENT_VOL_TIDAL", ["76222-9"]),
    ("16929196", "MDC_VENT_VOL_TIDAL_SETTING", ["20112-9"]),
    ("151586", "MDC_VENT_RESP_RATE", ["33438-3"]),
    ("16928802", "MDC_VENT_RESP_RATE_SETTING", ["19834-1"]),
]


@pytest.mark.parametrize(("code", "mnemonic", "loinc"), VITALS)
def test_vitals_and_ventilator_metrics_carry_mdc_and_loinc(
    code: str, mnemonic: str, loinc: list[str]
) -> None:
    for concept in (mdc_concept(code, mnemonic), mdc_concept(code, "")):
        assert concept["coding"][0]["system"] == MDC_SYSTEM
        assert concept["coding"][0]["code"] == code
        assert [c["code"] for c in concept["coding"][1:]] == loinc
        assert {c["system"] for c in concept["coding"][1:]} == {LOINC_SYSTEM}
    # a device that sends only the mnemonic (no code) is understood too
    by_name = metric_for("", mnemonic)
    assert by_name is not None and str(by_name.mdc) == code


def test_settings_are_the_measured_code_plus_two_to_the_24() -> None:
    for key in ("fio2", "peep", "vt", "vent_rate"):
        measured, setting = METRICS_BY_KEY[key], METRICS_BY_KEY[f"{key}_set"]
        assert setting.mdc == measured.mdc + SETTING_OFFSET
        assert setting.mnemonic == measured.mnemonic + "_SETTING"
        assert setting.ucum == measured.ucum


def test_other_mdc_metrics_keep_their_code_only() -> None:
    concept = mdc_concept("157784", "MDC_FLOW_FLUID_PUMP")
    assert concept == {
        "coding": [{"system": MDC_SYSTEM, "code": "157784", "display": "MDC_FLOW_FLUID_PUMP"}],
        "text": "MDC_FLOW_FLUID_PUMP",
    }


@pytest.mark.parametrize(
    ("code", "text", "system", "ucum"),
    [
        ("264864", "MDC_DIM_BEAT_PER_MIN", "MDC", "/min"),  # MDC code and mnemonic
        ("266016", "", "", "mm[Hg]"),  # MDC code, no coding system
        ("", "MDC_DIM_CM_H2O", "MDC", "cm[H2O]"),  # MDC mnemonic only
        ("MDC_DIM_DEGC", "", "", "Cel"),  # mnemonic in the code component
        ("265266", "MDC_DIM_MILLI_L_PER_HR", "MDC", "mL/h"),
        ("mm[Hg]", "", "UCUM", "mm[Hg]"),  # UCUM as it is
        ("mmHg", "", "UCUM", "mm[Hg]"),  # printable spellings of UCUM
        ("bpm", "", "", "/min"),
        ("%", "percent", "UCUM", "%"),
        ("[degF]", "", "UCUM", "[degF]"),
    ],
)
def test_units_become_ucum(code: str, text: str, system: str, ucum: str) -> None:
    assert to_ucum(code, text, system) == ucum


@pytest.mark.parametrize(
    ("code", "text", "system"),
    [
        ("999", "MDC_DIM_FURLONG", "MDC"),
        ("furlong", "", "UCUM"),
        ("mm[Hg]", "", "ISO+"),  # a UCUM code under another coding system is not guessed
    ],
)
def test_unknown_units_are_refused(code: str, text: str, system: str) -> None:
    with pytest.raises(UnknownUnit):
        to_ucum(code, text, system)


def test_board_ranges() -> None:
    assert out_of_range("hr", 49) and out_of_range("hr", 121)
    assert not out_of_range("hr", 50) and not out_of_range("hr", 120)
    assert out_of_range("spo2", 91) and not out_of_range("spo2", 100)  # no upper bound
    assert out_of_range("art_mean", 64) and not out_of_range("art_mean", 65)
    assert out_of_range("temp", 38.6) and out_of_range("temp", 35.9)
    assert not out_of_range("unknown", 1e9)
