"""Plans: reading a definition (JSON or TOML), checking it, and keeping it.

A plan definition is a small document written by the crisis team::

    {"id": "plan-blanc-jeanne-sorel", "name": "Plan blanc CH Jeanne-Sorel",
     "hospital": "ch-jeanne-sorel", "channels": ["sms", "voice", "email"],
     "wait_minutes": 10, "wave_size": 0, "cycles": 2,
     "templates": {"alert": "..."},
     "levels": [{"level": 1, "name": "Afflux modéré", "requests": [
         {"role": "224547003", "unit": "ch-jeanne-sorel-icu", "quota": 6,
          "deadline_minutes": 60}]}]}

Every error names the field at fault (``levels[0].requests[1].quota: ...``) so that
whoever wrote the file can fix it without reading code. A template may use only the
placeholders :class:`~hygie.mobilization.model.Templates` lists.
"""

from __future__ import annotations

import re
import string
import time
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update

from hygie.mobilization import tables as t
from hygie.mobilization.errors import InvalidPlan, NotFound
from hygie.mobilization.model import ANY_ROLE, CHANNELS, Level, Plan, RequestSpec, Templates

_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
_PLACEHOLDERS = {"plan", "level", "role", "unit", "hospital", "deadline", "quota", "eta"}
_MAX_TEMPLATE = 1000
_MAX_LEVELS = 20
_MAX_REQUESTS = 200
#: Longest wait for one answer, and longest deadline (a campaign lasts hours, not days).
_MAX_WAIT_S = 24 * 3600
_MAX_DEADLINE_MIN = 7 * 24 * 60


def _text(
    data: Mapping[str, Any], name: str, where: str, *, required: bool = True, max_len: int = 200
) -> str | None:
    value = data.get(name)
    if value is None or value == "":
        if required:
            raise InvalidPlan(f"{where}{name}: required")
        return None
    if not isinstance(value, str):
        raise InvalidPlan(f"{where}{name}: a string is expected")
    value = value.strip()
    if len(value) > max_len:
        raise InvalidPlan(f"{where}{name}: at most {max_len} characters")
    return value


def _int(
    data: Mapping[str, Any], name: str, where: str, low: int, high: int, default: int | None = None
) -> int:
    value = data.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidPlan(f"{where}{name}: an integer is expected")
    if not low <= value <= high:
        raise InvalidPlan(f"{where}{name}: between {low} and {high}")
    return value


def _template(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidPlan(f"templates.{name}: a non-empty string is expected")
    if len(value) > _MAX_TEMPLATE:
        raise InvalidPlan(f"templates.{name}: at most {_MAX_TEMPLATE} characters")
    try:
        fields = {f for _lit, f, _spec, _conv in string.Formatter().parse(value) if f is not None}
    except ValueError as exc:
        raise InvalidPlan(f"templates.{name}: {exc} (write {{{{ and }}}} for braces)") from exc
    unknown = sorted(f for f in fields if f not in _PLACEHOLDERS)
    if unknown:
        raise InvalidPlan(
            f"templates.{name}: unknown placeholder {{{unknown[0]}}} "
            f"(known: {', '.join(sorted(_PLACEHOLDERS))})"
        )
    return value.strip()


def _wait_s(data: Mapping[str, Any]) -> float:
    if "wait_seconds" in data and "wait_minutes" in data:
        raise InvalidPlan("wait_minutes: give wait_minutes or wait_seconds, not both")
    if "wait_seconds" in data:
        raw, factor, name = data["wait_seconds"], 1.0, "wait_seconds"
    else:
        raw, factor, name = data.get("wait_minutes", 10), 60.0, "wait_minutes"
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise InvalidPlan(f"{name}: a number is expected")
    seconds = float(raw) * factor
    if not 1.0 <= seconds <= _MAX_WAIT_S:
        raise InvalidPlan(f"{name}: between 1 second and 24 hours")
    return seconds


def _request(data: Any, where: str) -> RequestSpec:
    if not isinstance(data, Mapping):
        raise InvalidPlan(f"{where}: an object is expected")
    role = _text(data, "role", where, max_len=64)
    assert role is not None
    if role != ANY_ROLE and not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", role):
        raise InvalidPlan(f"{where}role: a role code (letters, digits, . _ -) or '*'")
    unit = _text(data, "unit", where, required=False, max_len=64)
    skill = _text(data, "skill", where, required=False)
    return RequestSpec(
        role=role,
        quota=_int(data, "quota", where, 1, 100_000),
        deadline_minutes=_int(data, "deadline_minutes", where, 1, _MAX_DEADLINE_MIN, default=60),
        unit=unit,
        skill=skill,
    )


def _level(data: Any, where: str) -> Level:
    if not isinstance(data, Mapping):
        raise InvalidPlan(f"{where}: an object is expected")
    number = _int(data, "level", where, 1, 99)
    name = _text(data, "name", where, required=False) or f"Niveau {number}"
    requests = data.get("requests")
    if not isinstance(requests, list) or not requests:
        raise InvalidPlan(f"{where}requests: a non-empty list is expected")
    if len(requests) > _MAX_REQUESTS:
        raise InvalidPlan(f"{where}requests: at most {_MAX_REQUESTS}")
    return Level(
        number, name, tuple(_request(r, f"{where}requests[{i}].") for i, r in enumerate(requests))
    )


def parse_plan(data: Any) -> Plan:
    """A checked :class:`Plan` from its definition (a mapping); raise InvalidPlan."""
    if not isinstance(data, Mapping):
        raise InvalidPlan("a plan is an object")
    plan_id = _text(data, "id", "", max_len=64)
    assert plan_id is not None
    if not _ID.fullmatch(plan_id):
        raise InvalidPlan("id: lower-case letters, digits and '-' (at most 64)")
    name = _text(data, "name", "")
    assert name is not None
    channels = data.get("channels", ["sms", "voice", "email"])
    if not isinstance(channels, list) or not channels or any(c not in CHANNELS for c in channels):
        raise InvalidPlan(f"channels: a non-empty list of {', '.join(CHANNELS)}")
    levels_raw = data.get("levels")
    if not isinstance(levels_raw, list) or not levels_raw:
        raise InvalidPlan("levels: a non-empty list is expected")
    if len(levels_raw) > _MAX_LEVELS:
        raise InvalidPlan(f"levels: at most {_MAX_LEVELS}")
    levels = tuple(_level(lv, f"levels[{i}].") for i, lv in enumerate(levels_raw))
    numbers = [lv.number for lv in levels]
    if len(set(numbers)) != len(numbers):
        raise InvalidPlan("levels: each level number once")
    raw_templates = data.get("templates") or {}
    if not isinstance(raw_templates, Mapping):
        raise InvalidPlan("templates: an object is expected")
    known = Templates.__dataclass_fields__
    for key in raw_templates:
        if key not in known:
            raise InvalidPlan(
                f"templates.{key}: unknown template (known: {', '.join(sorted(known))})"
            )
    templates = Templates(**{k: _template(k, v) for k, v in raw_templates.items()})
    for key in known:  # the defaults must pass the same check
        _template(key, getattr(templates, key))
    return Plan(
        id=plan_id,
        name=name,
        levels=levels,
        channels=tuple(channels),
        wait_s=_wait_s(data),
        wave_size=_int(data, "wave_size", "", 0, 100_000, default=0),
        cycles=_int(data, "cycles", "", 1, 10, default=1),
        templates=templates,
        hospital=_text(data, "hospital", "", required=False, max_len=64),
        description=_text(data, "description", "", required=False, max_len=2000) or "",
    )


def plan_to_dict(plan: Plan) -> dict[str, Any]:
    """The definition of a plan, as ``parse_plan`` reads it back."""
    out: dict[str, Any] = {
        "id": plan.id,
        "name": plan.name,
        "channels": list(plan.channels),
        "wait_seconds": plan.wait_s,
        "wave_size": plan.wave_size,
        "cycles": plan.cycles,
        "templates": plan.templates.as_dict(),
        "levels": [
            {
                "level": lv.number,
                "name": lv.name,
                "requests": [
                    {
                        k: v
                        for k, v in {
                            "role": r.role,
                            "unit": r.unit,
                            "skill": r.skill,
                            "quota": r.quota,
                            "deadline_minutes": r.deadline_minutes,
                        }.items()
                        if v is not None
                    }
                    for r in lv.requests
                ],
            }
            for lv in plan.levels
        ],
    }
    if plan.hospital:
        out["hospital"] = plan.hospital
    if plan.description:
        out["description"] = plan.description
    return out


def read_plan_file(text: str, suffix: str) -> Plan:
    """A plan from the text of a ``.json`` or ``.toml`` file."""
    import json
    import tomllib

    try:
        data = tomllib.loads(text) if suffix.lower() == ".toml" else json.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise InvalidPlan(
            f"the file is not valid {suffix.lstrip('.').upper() or 'JSON'}: {exc}"
        ) from exc
    return parse_plan(data)


# --- storage ---------------------------------------------------------------------------


def save_plan(conn: Connection, plan: Plan, now_ms: int | None = None) -> Plan:
    """Create or replace a plan; its version goes up by one at each save."""
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    current = conn.execute(select(t.plan.c.version).where(t.plan.c.id == plan.id)).scalar()
    version = (current or 0) + 1
    saved = Plan(**{**plan.__dict__, "version": version})
    values = {
        "name": plan.name,
        "hospital_id": plan.hospital,
        "definition": plan_to_dict(saved),
        "version": version,
        "archived": False,
        "updated_ms": now,
    }
    if current is None:
        conn.execute(insert(t.plan).values(id=plan.id, created_ms=now, **values))
    else:
        conn.execute(update(t.plan).where(t.plan.c.id == plan.id).values(**values))
    return saved


def _from_row(row: Any) -> Plan:
    plan = parse_plan(row.definition)
    return Plan(**{**plan.__dict__, "version": row.version})


def get_plan(engine: Engine, plan_id: str) -> Plan:
    with engine.connect() as conn:
        row = conn.execute(
            select(t.plan).where(t.plan.c.id == plan_id, t.plan.c.archived.is_(False))
        ).first()
    if row is None:
        raise NotFound(f"no plan {plan_id!r}")
    return _from_row(row)


def list_plans(engine: Engine) -> list[Plan]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(t.plan).where(t.plan.c.archived.is_(False)).order_by(t.plan.c.name)
        ).all()
    return [_from_row(r) for r in rows]


def archive_plan(conn: Connection, plan_id: str, now_ms: int) -> None:
    done = conn.execute(
        update(t.plan)
        .where(t.plan.c.id == plan_id, t.plan.c.archived.is_(False))
        .values(archived=True, updated_ms=now_ms)
    ).rowcount
    if not done:
        raise NotFound(f"no plan {plan_id!r}")
