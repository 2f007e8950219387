"""Codes the gateway maps: IEEE 11073-10101 (MDC) metrics and units, LOINC, UCUM.

A PCD-01 observation is identified by its MDC code (OBX-3, coding system ``MDC``); the
FHIR Observation keeps that code (system ``urn:iso:std:iso:11073:10101``) and adds the
LOINC code of the common vital signs, which is what the FHIR R4 vital-signs profiles and
the record's charts search by (http://hl7.org/fhir/R4/observation-vitalsigns.html).
Units arrive as MDC dimension codes (partition 4) or as UCUM; they leave as UCUM.

No maintained Python package carries the 11073 nomenclature or a MDC-to-UCUM table, so
the few dozen terms a monitor, a ventilator, an infusion pump and home devices send are
listed here, each with the code the nomenclature assigns (context-free code = partition
x 65536 + term code; a ``_SETTING`` variant is the measured code + 2**24).
"""

from __future__ import annotations

from dataclasses import dataclass

MDC_SYSTEM = "urn:iso:std:iso:11073:10101"
LOINC_SYSTEM = "http://loinc.org"
UCUM_SYSTEM = "http://unitsofmeasure.org"
VITAL_SIGNS = {
    "coding": [
        {
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": "vital-signs",
            "display": "Vital Signs",
        }
    ],
}

#: Offset of the ``_SETTING`` variant of a metric (IEEE 11073-10101a).
SETTING_OFFSET = 1 << 24


@dataclass(frozen=True, slots=True)
class Metric:
    """A metric the board and the record know: its MDC code and what it means."""

    key: str
    mdc: int
    mnemonic: str
    label: str
    ucum: str
    loinc: tuple[tuple[str, str], ...] = ()
    #: Usual adult range for an intensive care board, (low, high); None: open side.
    normal: tuple[float | None, float | None] = (None, None)
    vital: bool = True


_METRICS = [
    Metric(
        "hr", 147842, "MDC_ECG_HEART_RATE", "FC", "/min", (("8867-4", "Heart rate"),), (50, 120)
    ),
    Metric(
        "pulse",
        149530,
        "MDC_PULS_OXIM_PULS_RATE",
        "Pouls",
        "/min",
        (("8889-8", "Heart rate by Pulse oximetry"),),
        (50, 120),
    ),
    Metric(
        "spo2",
        150456,
        "MDC_PULS_OXIM_SAT_O2",
        "SpO2",
        "%",
        (
            ("2708-6", "Oxygen saturation in Arterial blood"),
            ("59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry"),
        ),
        (92, None),
    ),
    Metric(
        "rr", 151562, "MDC_RESP_RATE", "FR", "/min", (("9279-1", "Respiratory rate"),), (10, 30)
    ),
    Metric(
        "nibp_sys",
        150021,
        "MDC_PRESS_BLD_NONINV_SYS",
        "PNI sys",
        "mm[Hg]",
        (("8480-6", "Systolic blood pressure"),),
        (90, 180),
    ),
    Metric(
        "nibp_dia",
        150022,
        "MDC_PRESS_BLD_NONINV_DIA",
        "PNI dia",
        "mm[Hg]",
        (("8462-4", "Diastolic blood pressure"),),
        (40, 110),
    ),
    Metric(
        "nibp_mean",
        150023,
        "MDC_PRESS_BLD_NONINV_MEAN",
        "PNI moy",
        "mm[Hg]",
        (("8478-0", "Mean blood pressure"),),
        (65, 130),
    ),
    Metric(
        "art_sys",
        150033,
        "MDC_PRESS_BLD_ART_SYS",
        "PA sys",
        "mm[Hg]",
        (("76215-3", "Invasive Systolic blood pressure"),),
        (90, 180),
    ),
    Metric(
        "art_dia",
        150034,
        "MDC_PRESS_BLD_ART_DIA",
        "PA dia",
        "mm[Hg]",
        (("76213-8", "Invasive Diastolic blood pressure"),),
        (40, 110),
    ),
    Metric(
        "art_mean",
        150035,
        "MDC_PRESS_BLD_ART_MEAN",
        "PAM",
        "mm[Hg]",
        (("76214-6", "Invasive Mean blood pressure"),),
        (65, 130),
    ),
    Metric(
        "temp",
        150364,
        "MDC_TEMP_BODY",
        "Temp",
        "Cel",
        (("8310-5", "Body temperature"),),
        (36.0, 38.5),
    ),
    Metric(
        "fio2",
        152196,
        "MDC_CONC_AWAY_O2_INSP",
        "FiO2",
        "%",
        (("3150-0", "Inhaled oxygen concentration"),),
        (21, 60),
        vital=False,
    ),
    Metric(
        "fio2_set",
        152196 + SETTING_OFFSET,
        "MDC_CONC_AWAY_O2_INSP_SETTING",
        "FiO2 réglée",
        "%",
        (("3150-0", "Inhaled oxygen concentration"),),
        (21, 60),
        vital=False,
    ),
    Metric(
        "peep",
        151976,
        "MDC_VENT_PRESS_AWAY_END_EXP_POS",
        "PEP",
        "cm[H2O]",
        (("76248-4", "PEEP Respiratory system --on ventilator"),),
        (3, 15),
        vital=False,
    ),
    Metric(
        "peep_set",
        151976 + SETTING_OFFSET,
        "MDC_VENT_PRESS_AWAY_END_EXP_POS_SETTING",
        "PEP réglée",
        "cm[H2O]",
        (),
        (3, 15),
        vital=False,
    ),
    Metric(
        "vt",
        151980,
        "MDC_VENT_VOL_TIDAL",
        "Vt",
        "mL",
        (("76222-9", "Tidal volume Respiratory system airway --on ventilator"),),
        (250, 700),
        vital=False,
    ),
    Metric(
        "vt_set",
        151980 + SETTING_OFFSET,
        "MDC_VENT_VOL_TIDAL_SETTING",
        "Vt réglé",
        "mL",
        (("20112-9", "Tidal volume setting Ventilator"),),
        (250, 700),
        vital=False,
    ),
    Metric(
        "vent_rate",
        151586,
        "MDC_VENT_RESP_RATE",
        "FR vent.",
        "/min",
        (("33438-3", "Breath rate mechanical --on ventilator"),),
        (8, 35),
        vital=False,
    ),
    Metric(
        "vent_rate_set",
        151586 + SETTING_OFFSET,
        "MDC_VENT_RESP_RATE_SETTING",
        "FR réglée",
        "/min",
        (("19834-1", "Breath rate setting Ventilator"),),
        (8, 35),
        vital=False,
    ),
]

METRICS_BY_CODE: dict[int, Metric] = {m.mdc: m for m in _METRICS}
METRICS_BY_KEY: dict[str, Metric] = {m.key: m for m in _METRICS}
METRICS_BY_MNEMONIC: dict[str, Metric] = {m.mnemonic: m for m in _METRICS}
#: Display order of the board's columns.
BOARD_KEYS = (
    "hr",
    "spo2",
    "rr",
    "art_mean",
    "nibp_sys",
    "nibp_dia",
    "temp",
    "fio2",
    "peep",
    "vt",
    "vent_rate",
)

#: MDC sample-rate attribute of a waveform (facet of an NA observation), samples per second.
MDC_ATTR_SAMP_RATE = 67981

# --- units -----------------------------------------------------------------------------

#: MDC dimensions (partition 4, 262144 + term code) that devices send, with their UCUM.
_DIMENSIONS: list[tuple[int, str, str]] = [
    (262656, "MDC_DIM_DIMLESS", "1"),
    (262688, "MDC_DIM_PERCENT", "%"),
    (263744, "MDC_DIM_X_L", "L"),
    (263762, "MDC_DIM_MILLI_L", "mL"),
    (263872, "MDC_DIM_X_G", "g"),
    (263875, "MDC_DIM_KILO_G", "kg"),
    (264306, "MDC_DIM_MILLI_G_PER_ML", "mg/mL"),
    (264320, "MDC_DIM_SEC", "s"),
    (264338, "MDC_DIM_MILLI_SEC", "ms"),
    (264352, "MDC_DIM_MIN", "min"),
    (264864, "MDC_DIM_BEAT_PER_MIN", "/min"),
    (264928, "MDC_DIM_RESP_PER_MIN", "/min"),
    (265216, "MDC_DIM_X_L_PER_MIN", "L/min"),
    (265266, "MDC_DIM_MILLI_L_PER_HR", "mL/h"),
    (265619, "MDC_DIM_MICRO_G_PER_KG_PER_MIN", "ug/kg/min"),
    (265987, "MDC_DIM_KILO_PASCAL", "kPa"),
    (266016, "MDC_DIM_MMHG", "mm[Hg]"),
    (266048, "MDC_DIM_CM_H2O", "cm[H2O]"),
    (266418, "MDC_DIM_MILLI_VOLT", "mV"),
    (266560, "MDC_DIM_FAHR", "[degF]"),
    (268192, "MDC_DIM_DEGC", "Cel"),
]
_UNIT_BY_CODE = {code: ucum for code, _m, ucum in _DIMENSIONS}
_UNIT_BY_MNEMONIC = {mnemonic: ucum for _c, mnemonic, ucum in _DIMENSIONS}
#: Extra MDC names without a code in the table above (sample rates).
_UNIT_BY_MNEMONIC.update({"MDC_DIM_PER_SEC": "/s", "MDC_DIM_HZ": "Hz"})

#: UCUM codes the gateway accepts as they are (case-sensitive UCUM, the FHIR form).
UCUM_CODES = frozenset(
    {
        "1",
        "%",
        "L",
        "mL",
        "g",
        "kg",
        "s",
        "ms",
        "min",
        "h",
        "/min",
        "/s",
        "Hz",
        "L/min",
        "mL/h",
        "mL/min",
        "kPa",
        "mm[Hg]",
        "cm[H2O]",
        "mV",
        "uV",
        "Cel",
        "[degF]",
        "{beats}/min",
        "{breaths}/min",
        "mg/dL",
        "mg/mL",
        "ug/kg/min",
        "mmol/L",
        "kg/m2",
        "cm",
    }
)
#: Spellings seen in the field for UCUM codes (case-insensitive UCUM, printable forms).
_UCUM_ALIASES = {
    "/MIN": "/min",
    "BPM": "/min",
    "MMHG": "mm[Hg]",
    "MM[HG]": "mm[Hg]",
    "CEL": "Cel",
    "CMH2O": "cm[H2O]",
    "CM[H2O]": "cm[H2O]",
    "ML": "mL",
    "%": "%",
    "DEGC": "Cel",
    "[DEGF]": "[degF]",
    "ML/H": "mL/h",
    "L/MIN": "L/min",
    "{BEATS}/MIN": "{beats}/min",
    "{BREATHS}/MIN": "{breaths}/min",
}


class UnknownUnit(ValueError):
    """The unit is neither a known MDC dimension nor a UCUM code the gateway accepts."""


def to_ucum(code: str, text: str = "", system: str = "") -> str:
    """The UCUM code of a unit sent as an OBX-6 CWE (code ^ text ^ coding system).

    MDC units are matched by code, then by mnemonic (devices send either); UCUM units
    are accepted as such, or under a printable alias.
    """
    system = system.upper()
    if system in ("MDC", "ISO+", "") and code.isdigit() and int(code) in _UNIT_BY_CODE:
        return _UNIT_BY_CODE[int(code)]
    for candidate in (text, code):
        if candidate in _UNIT_BY_MNEMONIC:
            return _UNIT_BY_MNEMONIC[candidate]
    if system in ("UCUM", ""):
        if code in UCUM_CODES:
            return code
        alias = _UCUM_ALIASES.get(code.upper())
        if alias:
            return alias
    raise UnknownUnit(f"unit {code or text!r} ({system or 'no system'}) has no UCUM mapping")


def metric_for(code: str, mnemonic: str) -> Metric | None:
    """The known metric for an OBX-3 MDC code (or, failing a code, its mnemonic)."""
    if code.isdigit() and int(code) in METRICS_BY_CODE:
        return METRICS_BY_CODE[int(code)]
    return METRICS_BY_MNEMONIC.get(mnemonic)


def out_of_range(key: str, value: float) -> bool:
    """Whether a value of metric ``key`` falls outside the board's usual range."""
    metric = METRICS_BY_KEY.get(key)
    if metric is None:
        return False
    low, high = metric.normal
    return (low is not None and value < low) or (high is not None and value > high)
