"""Protocols read from their SDC Questionnaire: the shipped one, and precise errors."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from hygie.followup.errors import InvalidProtocol
from hygie.followup.model import Level, Rule
from hygie.followup.protocols import covid19_definition, effective_rules, parse_protocol
from hygie.store.validation import validate_resource


def test_the_covid19_protocol_is_a_valid_sdc_questionnaire() -> None:
    protocol = parse_protocol(covid19_definition())
    assert [q.link_id for q in protocol.questions] == [
        "temp",
        "breath",
        "spo2",
        "pulse",
        "symptoms",
    ]
    temp = protocol.questions[0]
    assert (temp.low, temp.high, temp.unit, temp.code) == (
        34.0,
        43.0,
        "Cel",
        ("http://loinc.org", "8310-5", "Body temperature"),
    )
    assert temp.text["en"].startswith("What is your temperature")
    assert {r.level for r in protocol.rules} == {Level.WARNING, Level.REVIEW, Level.EMERGENCY}
    assert protocol.schedule.times == ("08:00", "15:00") and protocol.schedule.days == 14
    validate_resource(protocol.questionnaire)  # raises on any R4 error


def _broken(path: list[Any], value: Any) -> dict[str, Any]:
    definition = copy.deepcopy(covid19_definition())
    target: Any = definition
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return definition


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (["questionnaire", "item", 1, "type"], "choice", "questionnaire.item[1].type"),
        (["questionnaire", "item", 1, "linkId"], "temp", "questionnaire.item[1].linkId"),
        (["questionnaire", "item", 0, "text"], "", "questionnaire.item[0].text"),
        (
            ["questionnaire", "item", 2, "enableWhen"],
            [{"question": "temp", "operator": "=", "answerBoolean": True}],
            "enableWhen",
        ),
        (["rules", 0, "item"], "nothing", "rules[0].item"),
        (["rules", 0, "op"], "=", "rules[0]"),
        (["rules", 3, "value"], 1, "rules[3]"),
        (["rules", 0, "level"], 4, "rules[0].level"),
        (["schedule", "times"], ["8h"], "schedule.times[0]"),
        (["schedule", "days"], 0, "schedule.days"),
        (["schedule", "on_days"], [0, 2], "schedule.on_days"),
        (["timing", "missing_after_min"], 30, "timing"),
        (["notify"], "fax", "notify"),
        (["id"], "covid 19", "id"),
    ],
)
def test_errors_name_the_field(path: list[Any], value: Any, message: str) -> None:
    with pytest.raises(InvalidProtocol, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_protocol(_broken(path, value))


def test_overrides_replace_or_remove_rules() -> None:
    protocol = parse_protocol(covid19_definition())
    usual = Rule("spo2", "<=", 88, Level.REVIEW, "Saturation ≤ 88 % (BPCO)")
    rules = effective_rules(protocol, (usual,), (("spo2", 3),))
    spo2 = [r for r in rules if r.item == "spo2"]
    assert spo2 == [usual]
    assert len(rules) == len(protocol.rules) - 1
