"""Protocols: a FHIR Questionnaire (SDC) with its schedule, thresholds and delays.

A protocol is saved as one JSON definition (``followup_protocol.definition``)::

    {"id": "covid19", "title": "...", "questionnaire": {Questionnaire},
     "schedule": {"times": ["08:00", "15:00"], "days": 14, "on_days": null},
     "rules": [{"item": "temp", "op": ">=", "value": 38, "level": 1, "label": "Fièvre"}],
     "timing": {"reminder_after_min": 60, ...}, "notify": "sms"}

The questions are read from the Questionnaire, which stays the one source of truth: item
``type`` (``decimal``, ``integer``, ``boolean``), ``text`` in French with an English
``translation`` extension on ``_text``, the SDC/core extensions ``minValue``,
``maxValue`` and ``questionnaire-unit``, ``code`` plus SDC ``observationExtract`` for the
Observation an answer becomes, and ``enableWhen`` on a boolean answer.
:func:`parse_protocol` checks all of it and names the faulty field; nothing half-valid
is saved. :func:`covid19_protocol` is the protocol shipped ready to use.
"""

from __future__ import annotations

import re
from typing import Any

from hygie.followup.errors import InvalidProtocol
from hygie.followup.model import Level, Protocol, Question, Rule, Schedule, Timing
from hygie.followup.schedule import parse_hhmm

SDC_PROFILE = "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire"
EXT_MIN = "http://hl7.org/fhir/StructureDefinition/minValue"
EXT_MAX = "http://hl7.org/fhir/StructureDefinition/maxValue"
EXT_UNIT = "http://hl7.org/fhir/StructureDefinition/questionnaire-unit"
EXT_TRANSLATION = "http://hl7.org/fhir/StructureDefinition/translation"
EXT_EXTRACT = "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-observationExtract"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
#: Canonical URLs of the service's own Questionnaires.
QUESTIONNAIRE_BASE = "https://hygie.example/fhir/Questionnaire"

_KINDS = ("decimal", "integer", "boolean")
_OPS = (">=", ">", "<=", "<", "=")
_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_MAX_QUESTIONS = 20


def _ext(element: dict[str, Any], url: str) -> dict[str, Any] | None:
    return next((e for e in element.get("extension", []) if e.get("url") == url), None)


def _number_ext(item: dict[str, Any], url: str, where: str) -> float | None:
    ext = _ext(item, url)
    if ext is None:
        return None
    for key in ("valueDecimal", "valueInteger"):
        if isinstance(ext.get(key), int | float) and not isinstance(ext.get(key), bool):
            return float(ext[key])
    raise InvalidProtocol(f"{where}: {url.rsplit('/', 1)[1]} needs valueDecimal or valueInteger")


def _translations(item: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for ext in item.get("_text", {}).get("extension", []):
        if ext.get("url") != EXT_TRANSLATION:
            continue
        parts = {e.get("url"): e for e in ext.get("extension", [])}
        lang = (parts.get("lang") or {}).get("valueCode")
        content = (parts.get("content") or {}).get("valueString")
        if isinstance(lang, str) and isinstance(content, str) and content.strip():
            out[lang.split("-")[0]] = content
    return out


def read_questions(questionnaire: dict[str, Any]) -> tuple[Question, ...]:
    """The questions of a Questionnaire, checked; raises InvalidProtocol."""
    if questionnaire.get("resourceType") != "Questionnaire":
        raise InvalidProtocol("questionnaire: resourceType must be Questionnaire")
    items = questionnaire.get("item")
    if not isinstance(items, list) or not items:
        raise InvalidProtocol("questionnaire.item: at least one question is needed")
    if len(items) > _MAX_QUESTIONS:
        raise InvalidProtocol(f"questionnaire.item: at most {_MAX_QUESTIONS} questions")
    questions: list[Question] = []
    seen: dict[str, str] = {}
    for i, item in enumerate(items):
        where = f"questionnaire.item[{i}]"
        if not isinstance(item, dict):
            raise InvalidProtocol(f"{where}: must be an object")
        link_id = item.get("linkId")
        if not isinstance(link_id, str) or not _ID.match(link_id):
            raise InvalidProtocol(f"{where}.linkId: 1-64 letters, digits, '-' or '.'")
        if link_id in seen:
            raise InvalidProtocol(f"{where}.linkId: {link_id!r} is used twice")
        kind = item.get("type")
        if kind not in _KINDS:
            raise InvalidProtocol(f"{where}.type: must be one of {', '.join(_KINDS)}")
        text = item.get("text")
        if not isinstance(text, str) or not text.strip():
            raise InvalidProtocol(f"{where}.text: the question's wording is needed")
        if len(text) > 300:
            raise InvalidProtocol(f"{where}.text: at most 300 characters (two SMS)")
        low = _number_ext(item, EXT_MIN, where)
        high = _number_ext(item, EXT_MAX, where)
        if low is not None and high is not None and low >= high:
            raise InvalidProtocol(f"{where}: minValue must be below maxValue")
        unit = unit_display = None
        unit_ext = _ext(item, EXT_UNIT)
        if unit_ext is not None:
            coding = unit_ext.get("valueCoding") or {}
            unit = coding.get("code")
            unit_display = coding.get("display") or unit
        code = None
        codes = item.get("code") or []
        if codes:
            first = codes[0]
            if not first.get("system") or not first.get("code"):
                raise InvalidProtocol(f"{where}.code[0]: system and code are needed")
            code = (
                str(first["system"]),
                str(first["code"]),
                str(first.get("display") or first["code"]),
            )
        enable = None
        conditions = item.get("enableWhen") or []
        if conditions:
            cond = conditions[0]
            other = cond.get("question")
            if other not in seen or seen[other] != "boolean":
                raise InvalidProtocol(
                    f"{where}.enableWhen[0].question: must name an earlier yes/no question"
                )
            if cond.get("operator") != "=" or not isinstance(cond.get("answerBoolean"), bool):
                raise InvalidProtocol(f"{where}.enableWhen[0]: only '=' on answerBoolean")
            enable = (str(other), bool(cond["answerBoolean"]))
        questions.append(
            Question(
                link_id=link_id,
                kind=kind,
                text={"fr": text.strip(), **_translations(item)},
                required=bool(item.get("required", True)),
                unit=unit,
                unit_display=unit_display,
                low=low,
                high=high,
                code=code,
                enable_when=enable,
            )
        )
        seen[link_id] = kind
    return tuple(questions)


def _rule(raw: Any, where: str, questions: dict[str, Question]) -> Rule:
    if not isinstance(raw, dict):
        raise InvalidProtocol(f"{where}: must be an object")
    item = raw.get("item")
    if item not in questions:
        raise InvalidProtocol(f"{where}.item: no question {item!r} in the questionnaire")
    op = raw.get("op")
    if op not in _OPS:
        raise InvalidProtocol(f"{where}.op: must be one of {' '.join(_OPS)}")
    value = raw.get("value")
    if questions[item].kind == "boolean":
        if op != "=" or not isinstance(value, bool):
            raise InvalidProtocol(f"{where}: a yes/no question takes '=' true or false")
    elif op == "=" or isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidProtocol(f"{where}: a number question takes >=, >, <=, < and a number")
    try:
        level = Level(int(raw.get("level", 0)))
    except (TypeError, ValueError) as exc:
        raise InvalidProtocol(f"{where}.level: 1 (warning), 2 (review) or 3 (emergency)") from exc
    label = raw.get("label")
    if not isinstance(label, str) or not label.strip() or len(label) > 120:
        raise InvalidProtocol(f"{where}.label: a short text for clinicians is needed")
    return Rule(item=str(item), op=str(op), value=value, level=level, label=label.strip())


def read_rules(raw: Any, questions: tuple[Question, ...], where: str = "rules") -> tuple[Rule, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise InvalidProtocol(f"{where}: must be a list")
    by_id = {q.link_id: q for q in questions}
    return tuple(_rule(r, f"{where}[{i}]", by_id) for i, r in enumerate(raw))


def read_times(raw: Any, where: str) -> tuple[str, ...]:
    if not isinstance(raw, list) or not raw or len(raw) > 6:
        raise InvalidProtocol(f'{where}: one to six times of day ("HH:MM")')
    out = []
    for i, value in enumerate(raw):
        try:
            at = parse_hhmm(str(value))
        except ValueError as exc:
            raise InvalidProtocol(f"{where}[{i}]: {exc}") from exc
        out.append(at.strftime("%H:%M"))
    if len(set(out)) != len(out):
        raise InvalidProtocol(f"{where}: the same time twice")
    return tuple(sorted(out))


def read_days(raw: Any, where: str, days: int = 366) -> tuple[int, ...] | None:
    if raw is None:
        return None
    if (
        not isinstance(raw, list)
        or not raw
        or not all(isinstance(d, int) and not isinstance(d, bool) and 1 <= d <= days for d in raw)
    ):
        raise InvalidProtocol(f"{where}: a list of day numbers from 1 to {days}")
    return tuple(sorted(set(raw)))


def _schedule(raw: Any) -> Schedule:
    if not isinstance(raw, dict):
        raise InvalidProtocol("schedule: must be an object")
    days = raw.get("days", 14)
    if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= 366:
        raise InvalidProtocol("schedule.days: a follow-up lasts 1 to 366 days")
    return Schedule(
        times=read_times(raw.get("times"), "schedule.times"),
        days=days,
        on_days=read_days(raw.get("on_days"), "schedule.on_days", days),
    )


def _minutes(raw: dict[str, Any], key: str, default: int) -> int:
    value = raw.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 7 * 1440:
        raise InvalidProtocol(f"timing.{key}: minutes from 1 to 10080")
    return value


def _timing(raw: Any) -> Timing:
    if raw is None:
        return Timing()
    if not isinstance(raw, dict):
        raise InvalidProtocol("timing: must be an object")
    base = Timing()
    reminder = _minutes(raw, "reminder_after_min", base.reminder_after_min)
    missing = _minutes(raw, "missing_after_min", base.missing_after_min)
    expire = _minutes(raw, "expire_after_min", base.expire_after_min)
    if not reminder < missing < expire:
        raise InvalidProtocol("timing: reminder_after_min < missing_after_min < expire_after_min")
    escalate_raw = raw.get("escalate_after_min", {})
    if not isinstance(escalate_raw, dict):
        raise InvalidProtocol("timing.escalate_after_min: an object {level: minutes}")
    escalate = dict(base.escalate_after_min)
    for key, value in escalate_raw.items():
        if str(key) not in ("1", "2", "3"):
            raise InvalidProtocol("timing.escalate_after_min: levels are 1, 2 and 3")
        escalate[int(key)] = _minutes({"m": value}, "m", 1) if value is not None else 0
    levels = {}
    for key in ("missing_level", "unclear_level"):
        try:
            levels[key] = Level(int(raw.get(key, getattr(base, key))))
        except (TypeError, ValueError) as exc:
            raise InvalidProtocol(f"timing.{key}: 1, 2 or 3") from exc
    max_escalations = raw.get("max_escalations", base.max_escalations)
    if not isinstance(max_escalations, int) or not 0 <= max_escalations <= 5:
        raise InvalidProtocol("timing.max_escalations: 0 to 5")
    return Timing(
        reminder_after_min=reminder,
        missing_after_min=missing,
        expire_after_min=expire,
        escalate_after_min=escalate,
        max_escalations=max_escalations,
        **levels,
    )


def parse_protocol(definition: Any, version: int = 1, active: bool = True) -> Protocol:
    """A protocol from its JSON definition, every part checked (InvalidProtocol)."""
    if not isinstance(definition, dict):
        raise InvalidProtocol("a protocol definition is a JSON object")
    pid = definition.get("id")
    if not isinstance(pid, str) or not _ID.match(pid):
        raise InvalidProtocol("id: 1-64 letters, digits, '-' or '.'")
    title = definition.get("title")
    if not isinstance(title, str) or not title.strip() or len(title) > 200:
        raise InvalidProtocol("title: a title of at most 200 characters is needed")
    questionnaire = definition.get("questionnaire")
    if not isinstance(questionnaire, dict):
        raise InvalidProtocol("questionnaire: a FHIR Questionnaire is needed")
    questions = read_questions(questionnaire)
    notify = definition.get("notify", "sms")
    if notify not in ("sms", "email"):
        raise InvalidProtocol("notify: sms or email")
    questionnaire = {
        **questionnaire,
        "id": pid,
        "version": str(version),
        "url": questionnaire.get("url") or f"{QUESTIONNAIRE_BASE}/{pid}",
        "status": "active" if active else "retired",
    }
    return Protocol(
        id=pid,
        title=title.strip(),
        version=version,
        questionnaire=questionnaire,
        questions=questions,
        schedule=_schedule(definition.get("schedule")),
        rules=read_rules(definition.get("rules"), questions),
        timing=_timing(definition.get("timing")),
        notify=notify,
        active=active,
    )


def protocol_definition(protocol: Protocol) -> dict[str, Any]:
    """The JSON definition a protocol is saved (and edited) as."""
    return {
        "id": protocol.id,
        "title": protocol.title,
        "questionnaire": protocol.questionnaire,
        "schedule": protocol.schedule.as_json(),
        "rules": [r.as_json() for r in protocol.rules],
        "timing": protocol.timing.as_json(),
        "notify": protocol.notify,
    }


# --- the shipped COVID-19 protocol -----------------------------------------------------


def _item(
    link_id: str,
    kind: str,
    fr: str,
    en: str,
    *,
    required: bool = True,
    low: float | None = None,
    high: float | None = None,
    unit: tuple[str, str] | None = None,
    loinc: tuple[str, str] | None = None,
    enable_when: tuple[str, bool] | None = None,
) -> dict[str, Any]:
    item: dict[str, Any] = {
        "linkId": link_id,
        "type": kind,
        "text": fr,
        "required": required,
        "_text": {
            "extension": [
                {
                    "url": EXT_TRANSLATION,
                    "extension": [
                        {"url": "lang", "valueCode": "en"},
                        {"url": "content", "valueString": en},
                    ],
                }
            ]
        },
    }
    ext: list[dict[str, Any]] = []
    value_key = "valueDecimal" if kind == "decimal" else "valueInteger"
    if low is not None:
        ext.append({"url": EXT_MIN, value_key: low if kind == "decimal" else int(low)})
    if high is not None:
        ext.append({"url": EXT_MAX, value_key: high if kind == "decimal" else int(high)})
    if unit is not None:
        ext.append(
            {"url": EXT_UNIT, "valueCoding": {"system": UCUM, "code": unit[0], "display": unit[1]}}
        )
    if loinc is not None:
        ext.append({"url": EXT_EXTRACT, "valueBoolean": True})
        item["code"] = [{"system": LOINC, "code": loinc[0], "display": loinc[1]}]
    if ext:
        item["extension"] = ext
    if enable_when is not None:
        item["enableWhen"] = [
            {"question": enable_when[0], "operator": "=", "answerBoolean": enable_when[1]}
        ]
    return item


def covid19_definition() -> dict[str, Any]:
    """The COVID-19 home follow-up protocol: twice a day (08:00, 15:00) for 14 days.

    Thresholds follow the French guidance of 2020 for patients followed at home
    (fever from 38 °C, SpO2 at or below 94 % for a clinical review and at or below
    92 % for an emergency, breathlessness, resting heart rate from 120 /min).
    """
    items = [
        _item(
            "temp",
            "decimal",
            "Quelle est votre température aujourd'hui (en degrés) ? Exemple : 37,8",
            "What is your temperature today (°C)? For example 37.8",
            low=34,
            high=43,
            unit=("Cel", "°C"),
            loinc=("8310-5", "Body temperature"),
        ),
        _item(
            "breath",
            "boolean",
            "Avez-vous plus de mal à respirer que d'habitude ? Répondez OUI ou NON",
            "Are you more short of breath than usual? Answer YES or NO",
        ),
        _item(
            "spo2",
            "integer",
            "Si vous avez un oxymètre, quelle est votre saturation (%) ? Sinon répondez NON",
            "If you have a pulse oximeter, what is your oxygen saturation (%)? Otherwise answer NO",
            required=False,
            low=50,
            high=100,
            unit=("%", "%"),
            loinc=("59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry"),
        ),
        _item(
            "pulse",
            "integer",
            "Quel est votre pouls au repos (battements par minute) ? Sinon répondez NON",
            "What is your resting pulse (beats per minute)? Otherwise answer NO",
            required=False,
            low=25,
            high=250,
            unit=("/min", "/min"),
            loinc=("8867-4", "Heart rate"),
        ),
        _item(
            "symptoms",
            "boolean",
            "Avez-vous de nouveaux troubles (toux, douleur, diarrhée, perte d'odorat) ? OUI ou NON",
            "Do you have new symptoms (cough, pain, diarrhoea, loss of taste)? YES or NO",
        ),
    ]
    questionnaire = {
        "resourceType": "Questionnaire",
        "meta": {"profile": [SDC_PROFILE]},
        "url": f"{QUESTIONNAIRE_BASE}/covid19",
        "name": "SuiviCovid19Domicile",
        "title": "Suivi à domicile COVID-19",
        "status": "active",
        "subjectType": ["Patient"],
        "language": "fr-FR",
        "item": items,
    }
    rules = [
        {"item": "temp", "op": ">=", "value": 38.0, "level": 1, "label": "Fièvre (≥ 38 °C)"},
        {
            "item": "temp",
            "op": ">=",
            "value": 39.5,
            "level": 2,
            "label": "Fièvre élevée (≥ 39,5 °C)",
        },
        {"item": "temp", "op": "<", "value": 35.5, "level": 2, "label": "Hypothermie (< 35,5 °C)"},
        {"item": "breath", "op": "=", "value": True, "level": 2, "label": "Essoufflement"},
        {"item": "spo2", "op": "<=", "value": 94, "level": 2, "label": "Saturation ≤ 94 %"},
        {"item": "spo2", "op": "<=", "value": 92, "level": 3, "label": "Saturation ≤ 92 %"},
        {"item": "pulse", "op": ">=", "value": 120, "level": 2, "label": "Pouls ≥ 120 /min"},
        {"item": "pulse", "op": "<", "value": 45, "level": 2, "label": "Pouls < 45 /min"},
        {"item": "symptoms", "op": "=", "value": True, "level": 1, "label": "Nouveaux symptômes"},
    ]
    return {
        "id": "covid19",
        "title": "Suivi à domicile COVID-19",
        "questionnaire": questionnaire,
        "schedule": {"times": ["08:00", "15:00"], "days": 14, "on_days": None},
        "rules": rules,
        "timing": Timing().as_json(),
        "notify": "sms",
    }


def covid19_protocol() -> Protocol:
    return parse_protocol(covid19_definition())


def effective_rules(
    protocol: Protocol, overrides_rules: tuple[Rule, ...], removed: tuple[tuple[str, int], ...]
) -> tuple[Rule, ...]:
    """The protocol's rules with a patient's overrides applied: an override replaces the
    rule on the same item and level, and ``removed`` (item, level) pairs are dropped."""
    replaced = {(r.item, int(r.level)) for r in overrides_rules} | set(removed)
    kept = [r for r in protocol.rules if (r.item, int(r.level)) not in replaced]
    return (*kept, *overrides_rules)
