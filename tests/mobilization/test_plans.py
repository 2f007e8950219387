"""Plan definitions: read from JSON and TOML, every error naming its field."""

from __future__ import annotations

import pytest

from hygie.mobilization import InvalidPlan, parse_plan, plan_to_dict, read_plan_file
from tests.mobilization.conftest import plan_definition

TOML = """
id = "plan-blanc-test"
name = "Plan blanc test"
channels = ["sms", "email"]
wait_minutes = 5
cycles = 2

[[levels]]
level = 1
name = "Afflux"
requests = [{ role = "224547003", unit = "icu", quota = 6, deadline_minutes = 60 }]
"""


def test_toml_and_round_trip() -> None:
    plan = read_plan_file(TOML, ".toml")
    assert (plan.wait_s, plan.cycles, plan.max_attempts) == (300.0, 2, 4)
    assert plan.level(1).requests[0].quota == 6
    assert parse_plan(plan_to_dict(plan)) == plan


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"id": "Plan Blanc"}, "id: lower-case letters"),
        ({"channels": ["fax"]}, "channels: a non-empty list of sms, voice, email"),
        ({"levels": []}, "levels: a non-empty list is expected"),
        ({"wait_seconds": 0}, "wait_seconds: between 1 second and 24 hours"),
        ({"templates": {"alert": "Bonjour {nom}"}}, "templates.alert: unknown placeholder {nom}"),
        ({"templates": {"sms": "x"}}, "templates.sms: unknown template"),
        (
            {"levels": [{"level": 1, "requests": [{"role": "x y", "quota": 1}]}]},
            "levels[0].requests[0].role: a role code",
        ),
        (
            {
                "levels": [
                    {"level": 1, "requests": [{"role": "1", "quota": 1}]},
                    {"level": 1, "requests": [{"role": "1", "quota": 1}]},
                ]
            },
            "levels: each level number once",
        ),
    ],
)
def test_errors_name_the_field(change: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidPlan) as err:
        parse_plan({**plan_definition(), **change})
    assert str(err.value).startswith(message)


def test_bad_file() -> None:
    with pytest.raises(InvalidPlan, match="not valid TOML"):
        read_plan_file("id = ", ".toml")
