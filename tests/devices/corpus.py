"""PCD-01 messages for the tests, written after the IHE PCD TF-2 examples.

Each builder returns the message as text (segments joined by CR), with the parts a
test varies as arguments. The structures follow the technical framework's examples
for a physiological monitor, a ventilator and an infusion pump: MSH-21 names the
PCD-01 profile, OBR-3 carries the device's EUI-64, OBX-4 the 11073 containment tree,
OBX-11 = X the rows that only name a level of that tree.
"""

from __future__ import annotations

PROFILE = "IHE_PCD_001^IHE PCD^1.3.6.1.4.1.19376.1.6.1.1.1^ISO"
MONITOR_EUI = "0012A1FFFE000A01"
VENT_EUI = "0012A2FFFE000B02"
PUMP_EUI = "0012A3FFFE000C03"
WHEN = "20260321081500+0100"


def msh(
    control: str,
    *,
    eui: str = MONITOR_EUI,
    accept: str = "NE",
    app: str = "AL",
    charset: str = "UNICODE UTF-8",
    version: str = "2.6",
    kind: str = "ORU^R01^ORU_R01",
    facility: str = "ch-jeanne-sorel",
    when: str = WHEN,
) -> str:
    return (
        f"MSH|^~\\&|ICU-GW^{eui}^EUI-64|{facility}|HYGIE|GHT|{when}||{kind}|{control}|P|"
        f"{version}|||{accept}|{app}||{charset}|||{PROFILE}"
    )


def patient(
    ipp: str = "0000000007",
    family: str = "MARTIN",
    given: str = "Claire",
    bed: str = "icu^101^a^ch-jeanne-sorel",
) -> list[str]:
    return [f"PID|||{ipp}^^^HYGIE^PI||{family}^{given}^^^^^L||19580412|F", f"PV1||I|{bed}"]


def obr(control: str, eui: str, when: str = WHEN) -> str:
    return (
        f"OBR|1|{control}^ICU-GW^{eui}^EUI-64|{control}^ICU-GW^{eui}^EUI-64|"
        f"182777000^monitoring of patient^SCT|||{when}"
    )


def obx(
    n: int,
    vt: str,
    code: str,
    path: str,
    value: str = "",
    unit: str = "",
    status: str = "R",
    eui: str = MONITOR_EUI,
    ref: str = "",
    flags: str = "",
    when: str = WHEN,
) -> str:
    equipment = f"{eui}^^{eui}^EUI-64" if eui else ""
    return (
        f"OBX|{n}|{vt}|{code}|{path}|{value}|{unit}|{ref}|{flags}|||{status}|||{when}||||"
        f"{equipment}"
    )


def monitor(
    control: str = "MON0001",
    *,
    hr: str = "88",
    spo2: str = "97",
    accept: str = "NE",
    app: str = "AL",
    ipp: str = "0000000007",
    charset: str = "UNICODE UTF-8",
    family: str = "MARTIN",
    given: str = "Claire",
    bed: str = "icu^101^a^ch-jeanne-sorel",
    eui: str = MONITOR_EUI,
) -> str:
    """A multi-parameter monitor: MDS, ECG and pressure VMDs, a channel, 8 metrics."""
    e = eui
    rows = [
        msh(control, eui=e, accept=accept, app=app, charset=charset),
        *patient(ipp, family, given, bed),
        obr(control, e),
        obx(1, "", "69965^MDC_DEV_MON_PHYSIO_MULTI_PARAM_MDS^MDC", "1.0.0.0", status="X", eui=e),
        obx(2, "", "69798^MDC_DEV_ECG_VMD^MDC", "1.1.0.0", status="X", eui=e),
        obx(3, "", "69799^MDC_DEV_ECG_CHAN^MDC", "1.1.1.0", status="X", eui=e),
        obx(
            4,
            "NM",
            "147842^MDC_ECG_HEART_RATE^MDC",
            "1.1.1.1",
            hr,
            "264864^MDC_DIM_BEAT_PER_MIN^MDC",
            eui=e,
            ref="50-120",
        ),
        obx(
            5,
            "NM",
            "150456^MDC_PULS_OXIM_SAT_O2^MDC",
            "1.2.1.1",
            spo2,
            "262688^MDC_DIM_PERCENT^MDC",
            eui=e,
        ),
        obx(
            6,
            "NM",
            "151562^MDC_RESP_RATE^MDC",
            "1.3.1.1",
            "19",
            "264928^MDC_DIM_RESP_PER_MIN^MDC",
            eui=e,
        ),
        obx(
            7,
            "NM",
            "150021^MDC_PRESS_BLD_NONINV_SYS^MDC",
            "1.4.1.1",
            "128",
            "266016^MDC_DIM_MMHG^MDC",
            eui=e,
        ),
        obx(
            8,
            "NM",
            "150022^MDC_PRESS_BLD_NONINV_DIA^MDC",
            "1.4.1.2",
            "76",
            "266016^MDC_DIM_MMHG^MDC",
            eui=e,
        ),
        obx(
            9,
            "NM",
            "150023^MDC_PRESS_BLD_NONINV_MEAN^MDC",
            "1.4.1.3",
            "93",
            "266016^MDC_DIM_MMHG^MDC",
            eui=e,
        ),
        obx(
            10,
            "NM",
            "150035^MDC_PRESS_BLD_ART_MEAN^MDC",
            "1.5.1.3",
            "61",
            "266016^MDC_DIM_MMHG^MDC",
            eui=e,
            flags="L",
        ),
        obx(
            11,
            "NM",
            "150364^MDC_TEMP_BODY^MDC",
            "1.6.1.1",
            "38.9",
            "268192^MDC_DIM_DEGC^MDC",
            eui=e,
        ),
    ]
    return "\r".join(rows)


def ventilator(control: str = "VEN0001", *, ipp: str = "0000000007") -> str:
    """A ventilator: MDS and VMD rows, measured values and settings (codes + 2**24)."""
    e = VENT_EUI
    rows = [
        msh(control, eui=e),
        *patient(ipp),
        obr(control, e),
        obx(1, "", "70001^MDC_DEV_SYS_PT_VENT_MDS^MDC", "1.0.0.0", status="X", eui=e),
        obx(2, "", "70002^MDC_DEV_SYS_PT_VENT_VMD^MDC", "1.1.0.0", status="X", eui=e),
        obx(
            3,
            "NM",
            "152196^MDC_CONC_AWAY_O2_INSP^MDC",
            "1.1.1.1",
            "45",
            "262688^MDC_DIM_PERCENT^MDC",
            eui=e,
        ),
        obx(
            4,
            "NM",
            "151976^MDC_VENT_PRESS_AWAY_END_EXP_POS^MDC",
            "1.1.1.2",
            "8",
            "266048^MDC_DIM_CM_H2O^MDC",
            eui=e,
        ),
        obx(
            5,
            "NM",
            "151980^MDC_VENT_VOL_TIDAL^MDC",
            "1.1.1.3",
            "412",
            "263762^MDC_DIM_MILLI_L^MDC",
            eui=e,
        ),
        obx(
            6,
            "NM",
            "151586^MDC_VENT_RESP_RATE^MDC",
            "1.1.1.4",
            "20",
            "264928^MDC_DIM_RESP_PER_MIN^MDC",
            eui=e,
        ),
        obx(
            7,
            "NM",
            "16929196^MDC_VENT_VOL_TIDAL_SETTING^MDC",
            "1.1.1.5",
            "420",
            "263762^MDC_DIM_MILLI_L^MDC",
            eui=e,
        ),
        obx(
            8,
            "NM",
            "16928802^MDC_VENT_RESP_RATE_SETTING^MDC",
            "1.1.1.6",
            "18",
            "264928^MDC_DIM_RESP_PER_MIN^MDC",
            eui=e,
        ),
        obx(
            9,
            "NM",
            "16929412^MDC_CONC_AWAY_O2_INSP_SETTING^MDC",
            "1.1.1.7",
            "45",
            "262688^MDC_DIM_PERCENT^MDC",
            eui=e,
        ),
    ]
    return "\r".join(rows)


def pump(control: str = "PMP0001", *, ipp: str = "0000000007") -> str:
    """An infusion pump: MDS, VMD, delivery and source channels, rate, volumes, drug name,
    status as a coded value."""
    e = PUMP_EUI
    rows = [
        msh(control, eui=e),
        *patient(ipp),
        obr(control, e),
        obx(1, "", "69985^MDC_DEV_PUMP_INFUS_MDS^MDC", "1.0.0.0", status="X", eui=e),
        obx(2, "", "69986^MDC_DEV_PUMP_INFUS_VMD^MDC", "1.1.0.0", status="X", eui=e),
        obx(3, "", "126978^MDC_DEV_PUMP_INFUS_CHAN_DELIVERY^MDC", "1.1.1.0", status="X", eui=e),
        obx(4, "CWE", "184508^MDC_PUMP_STAT^MDC", "1.1.1.1", "^pump-status-infusing", eui=e),
        obx(
            5,
            "NM",
            "157784^MDC_FLOW_FLUID_PUMP^MDC",
            "1.1.1.2",
            "24.9",
            "265266^MDC_DIM_MILLI_L_PER_HR^MDC",
            eui=e,
        ),
        obx(
            6,
            "NM",
            "157864^MDC_VOL_FLUID_DELIV^MDC",
            "1.1.1.3",
            "25.6",
            "263762^MDC_DIM_MILLI_L^MDC",
            eui=e,
        ),
        obx(7, "", "126977^MDC_DEV_PUMP_INFUS_CHAN_SOURCE^MDC", "1.1.2.0", status="X", eui=e),
        obx(8, "ST", "184330^MDC_DRUG_NAME_TYPE^MDC", "1.1.2.1", "Noradrénaline", eui=e),
        obx(
            9,
            "NM",
            "157760^MDC_CONC_DRUG^MDC",
            "1.1.2.2",
            "0.08",
            "264306^MDC_DIM_MILLI_G_PER_ML^MDC",
            eui=e,
        ),
        obx(
            10,
            "NM",
            "157872^MDC_VOL_FLUID_TBI_REMAIN^MDC",
            "1.1.2.3",
            "224.4",
            "263762^MDC_DIM_MILLI_L^MDC",
            eui=e,
        ),
    ]
    return "\r".join(rows)


def waveform(control: str = "WAV0001", *, rate: str | None = "250") -> str:
    """An ECG strip (NA) with its sample rate as a facet row one level below."""
    e = MONITOR_EUI
    rows = [
        msh(control),
        *patient(),
        obr(control, e),
        obx(1, "", "69965^MDC_DEV_MON_PHYSIO_MULTI_PARAM_MDS^MDC", "1.0.0.0", status="X"),
        obx(
            2,
            "NA",
            "131330^MDC_ECG_ELEC_POTL_II^MDC",
            "1.1.1.2",
            "0.12^0.15^0.9^1.4^0.3^-0.2^0.05^0.1",
            "266418^MDC_DIM_MILLI_VOLT^MDC",
        ),
    ]
    if rate is not None:
        rows.append(
            obx(3, "NM", "67981^MDC_ATTR_SAMP_RATE^MDC", "1.1.1.2.1", rate, "^MDC_DIM_PER_SEC^MDC")
        )
    return "\r".join(rows)


def replace_segment(message: str, prefix: str, new: str) -> str:
    """The message with the first segment starting with ``prefix`` replaced."""
    rows = message.split("\r")
    index = next(i for i, r in enumerate(rows) if r.startswith(prefix))
    rows[index] = new
    return "\r".join(rows)
