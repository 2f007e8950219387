"""The mapper: journal rows become FHIR resources in the store, then the board is updated.

It takes the oldest pending messages, parses each (``pcd01.py`` or ``home.py``), finds
the patient by identifier (creating a provisional, flagged one when the record does not
know it), writes Devices and Observations through the store's Python API (short
transactions of a few messages, after one for the batch's new patients and devices),
records each message's outcome in the journal, and keeps the board's latest values.
A message whose content is wrong is rejected alone, with the HL7 location of the
fault, and the rest of the batch goes on.

Crash safety: resource ids come from the message, and a message whose first
Observation is already in the store is marked stored without writing again (the
store committed, the journal did not).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Engine
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError

from hygie.devices import fhir
from hygie.devices.errors import (
    APPLICATION_INTERNAL_ERROR,
    DATA_TYPE_ERROR,
    MessageRejected,
    PayloadRejected,
)
from hygie.devices.home import DEVICE_TYPES, HomeReport, parse_payload
from hygie.devices.journal import REJECTED, STORED, Journal, Outcome, PendingRow
from hygie.devices.model import Bed, DevicesSettings, PatientId, Reading
from hygie.devices.pcd01 import parse_report
from hygie.devices.receipt import read_header
from hygie.devices.tables import bed as bed_tbl
from hygie.devices.tables import bed_value
from hygie.devices.terminology import metric_for, out_of_range
from hygie.store.model import now_us
from hygie.store.outcomes import FhirError
from hygie.store.sql_repository import SqlRepository

log = logging.getLogger("hygie.devices")
Json = dict[str, Any]


@dataclass
class Plan:
    """What one message becomes, before patients and beds are resolved."""

    row: PendingRow
    patient: PatientId
    system: str
    name: tuple[str, str]
    bed: Bed | None
    devices: Callable[[str, str | None], list[Json]]
    #: (reading, observation id, identifier, device id)
    observations: list[tuple[Reading, str, Json, str]]
    mds: str
    time: str
    bodies: list[Json] = field(default_factory=list)
    patient_id: str = ""
    provisional: bool = False
    location_id: str | None = None


class Mapper:
    """Maps pending journal rows into the store; see the module docstring."""

    def __init__(
        self,
        engine: Engine,
        repository: SqlRepository,
        settings: DevicesSettings,
        journal: Journal | None = None,
        *,
        record: bool = True,
    ) -> None:
        """``engine`` is the platform's (board tables); ``journal`` defaults to one on it.

        With ``record`` False the outcomes are only returned: the gateway records them
        in its own journal commits (the receipt path is then the journal's only
        writer), and until it has, the mapper does not take those messages again.
        """
        self.engine = engine
        self.repository = repository
        self.settings = settings
        self.journal = journal if journal is not None else Journal(engine)
        self.record = record
        #: Messages whose outcome went to the gateway, not yet seen recorded: id -> when.
        self._reported: dict[int, float] = {}
        self._patients: dict[tuple[str, str], tuple[str, bool]] = {}
        self._locations: dict[str, bool] = {}
        self._devices: dict[str, bytes] = {}

    # --- planning --------------------------------------------------------------------

    def _plan(self, row: PendingRow) -> Plan:
        if row.channel == "mqtt":
            return self._plan_home(row, parse_payload(row.raw, self.settings.patient_system))
        header, text = read_header(row.raw, self.settings.default_charset)
        report = parse_report(header, text, self.settings.local_timezone)
        system = self.settings.authority_systems.get(
            report.patient.authority, self.settings.patient_system
        )
        explicit = {fhir.node_id(n.eui64, n.path) for n in report.devices}
        observations = []
        for reading in report.readings:
            oid = fhir.observation_id(row.sender, row.control_id, reading.obx)
            identifier = {
                "system": fhir.OBX_IDENTIFIER,
                "value": f"{row.sender}|{row.control_id}|{reading.obx}",
            }
            observations.append((reading, oid, identifier, fhir.reading_device(reading, explicit)))
        first_eui = report.readings[0].eui64 if report.readings else report.devices[0].eui64
        return Plan(
            row,
            report.patient,
            system,
            report.patient_name,
            report.bed,
            lambda pid, loc: fhir.device_resources(report, pid, loc),
            observations,
            fhir.mds_id(first_eui),
            report.message_time,
        )

    def _plan_home(self, row: PendingRow, home: HomeReport) -> Plan:
        device_id = f"home-{home.device_id.lower()}"
        code, mnemonic = DEVICE_TYPES[home.device_type]

        def devices(patient_id: str, _location: str | None) -> list[Json]:
            return [
                {
                    "resourceType": "Device",
                    "id": device_id,
                    "status": "active",
                    "identifier": [
                        {"system": f"{fhir.HYGIE_BASE}/sid/home-device", "value": home.device_id}
                    ],
                    "type": {
                        "coding": [{"system": fhir.MDC_SYSTEM, "code": code, "display": mnemonic}],
                        "text": home.device_type,
                    },
                    "patient": {"reference": f"Patient/{patient_id}"},
                }
            ]

        observations = []
        for reading in home.readings:
            oid = f"mqtt-{fhir.short_hash(home.device_id, home.message_id)[:32]}-{reading.obx}"
            identifier = {
                "system": fhir.MQTT_IDENTIFIER,
                "value": f"{home.device_id}|{home.message_id}|{reading.obx}",
            }
            observations.append((reading, oid, identifier, device_id))
        return Plan(
            row,
            home.patient,
            home.patient_system,
            ("", ""),
            None,
            devices,
            observations,
            device_id,
            home.time,
        )

    # --- resolving -------------------------------------------------------------------

    def _exists(self, res_type: str, res_id: str) -> bool:
        try:
            self.repository.read(res_type, res_id)
        except FhirError:
            return False
        return True

    def _resolve_patient(self, plan: Plan, created: dict[str, list[Json]]) -> None:
        key = (plan.system, plan.patient.value)
        if key in self._patients:
            plan.patient_id, plan.provisional = self._patients[key]
            return
        page = self.repository.search(
            "Patient",
            [("identifier", f"{plan.system}|{plan.patient.value}"), ("_count", "2")],
            strict=True,
        )
        found = [m for m in page.matches]
        if found:
            stored = found[0]
            tags = stored.resource.get("meta", {}).get("tag", [])
            provisional = any(
                t.get("code") == "provisional" and t.get("system") == fhir.DEVICES_CODES
                for t in tags
            )
            self._patients[key] = (stored.res_id, provisional)
            plan.patient_id, plan.provisional = stored.res_id, provisional
            return
        pid = fhir.provisional_patient_id(*key)
        plan.patient_id, plan.provisional = pid, True
        if pid not in created:
            created[pid] = [
                fhir.provisional_patient(pid, plan.patient, plan.system, plan.name),
                fhir.provisional_flag(pid, plan.time),
            ]

    def _resolve_location(self, plan: Plan) -> None:
        if plan.bed is None:
            return
        lid = plan.bed.location_id
        if not lid or len(lid) > 64:
            return
        if lid not in self._locations:
            self._locations[lid] = self._exists("Location", lid)
        plan.location_id = lid if self._locations[lid] else None

    def _device_changed(self, body: Json) -> bool:
        data = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
        if self._devices.get(body["id"]) == data:
            return False
        if body["id"] not in self._devices:
            try:
                stored = self.repository.read("Device", body["id"]).resource
            except FhirError:
                stored = None
            if stored is not None:
                stored = {k: v for k, v in stored.items() if k != "meta"}
                previous = orjson.dumps(stored, option=orjson.OPT_SORT_KEYS)
                self._devices[body["id"]] = previous
                if previous == data:
                    return False
        return True

    # --- one batch -------------------------------------------------------------------

    def run_once(self, limit: int | None = None) -> list[Outcome]:
        """Map up to ``limit`` pending messages; return their outcomes (empty: none).

        A database error leaves the messages pending (they are tried again). Any other
        failure is a fault of the gateway on some message: the batch is then mapped one
        message at a time, and the one that fails alone is rejected (HL7 error 207)
        rather than blocking the journal forever.
        """
        rows = self._pending(limit or self.settings.mapper_batch)
        if not rows:
            return []
        try:
            return self._map(rows)
        except (DBAPIError, FhirError):
            raise
        except Exception:
            log.exception("mapping a batch of %d messages failed; one at a time", len(rows))
        outcomes = []
        for row in rows:
            try:
                outcomes += self._map([row])
            except (DBAPIError, FhirError):
                raise
            except Exception as exc:
                log.error("message %d could not be mapped (%s)", row.journal_id, type(exc).__name__)
                error = MessageRejected(
                    "internal error while mapping the message; see the gateway log",
                    segment="MSH",
                    code=APPLICATION_INTERNAL_ERROR,
                )
                outcome = Outcome(row.journal_id, REJECTED, error.as_dict())
                self._finish([outcome])
                outcomes.append(outcome)
        return outcomes

    def _pending(self, limit: int) -> list[PendingRow]:
        """Pending messages, but for those whose outcome the gateway has yet to record.

        A reported outcome the gateway never recorded (it failed, or was killed) is
        forgotten after 30 s and the message mapped again, which writes nothing twice.
        """
        if self._reported:
            now = time.monotonic()
            still = self.journal.pending_among(
                [i for i, when in self._reported.items() if now - when < 30]
            )
            self._reported = {i: w for i, w in self._reported.items() if i in still}
        return self.journal.pending(limit, skip=self._reported)

    def _finish(self, outcomes: list[Outcome]) -> None:
        if self.record:
            self.journal.finish(outcomes)
            return
        now = time.monotonic()
        self._reported.update((o.journal_id, now) for o in outcomes)

    def _map(self, rows: list[PendingRow]) -> list[Outcome]:
        outcomes: dict[int, Outcome] = {}
        plans: list[Plan] = []
        for row in rows:
            if row.unreadable is not None:
                log.error("message %d does not open: %s", row.journal_id, row.unreadable)
                error = MessageRejected(
                    "the journal's copy of the message does not open; see the gateway log",
                    segment="MSH",
                    code=APPLICATION_INTERNAL_ERROR,
                )
                outcomes[row.journal_id] = Outcome(row.journal_id, REJECTED, error.as_dict())
                continue
            try:
                plan = self._plan(row)
            except MessageRejected as exc:
                outcomes[row.journal_id] = Outcome(row.journal_id, REJECTED, exc.as_dict())
                continue
            except PayloadRejected as exc:
                outcomes[row.journal_id] = Outcome(
                    row.journal_id, REJECTED, {"text": str(exc), "path": exc.path}
                )
                continue
            if plan.observations and self._exists("Observation", plan.observations[0][1]):
                outcomes[row.journal_id] = Outcome(
                    row.journal_id, STORED, None, len(plan.observations)
                )
                continue
            plans.append(plan)
        written = self._write(plans, outcomes)
        ordered = [outcomes[r.journal_id] for r in rows]
        self._finish(ordered)
        self._update_board(written)
        return ordered

    def _write(self, plans: list[Plan], outcomes: dict[int, Outcome]) -> list[Plan]:
        repo = self.repository
        created: dict[str, list[Json]] = {}
        for plan in plans:
            self._resolve_patient(plan, created)
            self._resolve_location(plan)
        prepared: list[list[Any]] = []
        devices: dict[str, Json] = {}
        good: list[Plan] = []
        for plan in plans:
            try:
                items = []
                for reading, oid, identifier, device_id in plan.observations:
                    body = fhir.observation_resource(
                        reading,
                        res_id=oid,
                        identifier=identifier,
                        patient_id=plan.patient_id,
                        device_id=device_id,
                    )
                    try:
                        items.append(repo.prepare(body, oid))
                    except FhirError as exc:
                        raise _rejected_resource(plan, reading, exc) from exc
                for body in plan.devices(plan.patient_id, plan.location_id):
                    repo.prepare(body, body["id"])
                    devices[body["id"]] = body
            except MessageRejected as exc:
                outcomes[plan.row.journal_id] = Outcome(
                    plan.row.journal_id, REJECTED, exc.as_dict()
                )
                continue
            except FhirError as exc:
                error = MessageRejected(
                    f"the device cannot be recorded: {exc}",
                    segment="OBX",
                    code=APPLICATION_INTERNAL_ERROR,
                )
                outcomes[plan.row.journal_id] = Outcome(
                    plan.row.journal_id, REJECTED, error.as_dict()
                )
                continue
            prepared.append(items)
            good.append(plan)
            outcomes[plan.row.journal_id] = Outcome(
                plan.row.journal_id, STORED, None, len(plan.observations)
            )
        needed_patients = {p.patient_id for p in good}
        context = []
        for pid, bodies in created.items():
            if pid in needed_patients and not self._exists("Patient", pid):
                context += [repo.prepare(b, b["id"]) for b in bodies]
        changed = [b for b in devices.values() if self._device_changed(b)]
        context += [repo.prepare(b, b["id"]) for b in changed]
        # Patients and devices first, then short transactions of a few messages: on
        # SQLite the store's write lock is that of every writer of the platform's
        # database (the API, other services), which must not wait behind a long batch
        # (larger ones write fewer pages in all). The journal has its own file.
        step = max(1, self.settings.messages_per_transaction)
        groups = [context] + [
            [i for items in prepared[k : k + step] for i in items]
            for k in range(0, len(prepared), step)
        ]
        pause = self.settings.mapper_yield_ms / 1000 if repo.is_sqlite else 0.0
        for items in groups:
            if items:
                with repo.transaction():
                    repo.put_many(items)
                if pause:
                    # SQLite's lock is not fair: back-to-back transactions would leave
                    # the other writers no gap to commit in
                    time.sleep(pause)
        for body in changed:
            self._devices[body["id"]] = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
        for plan in good:
            self._patients[(plan.system, plan.patient.value)] = (plan.patient_id, plan.provisional)
        return good

    # --- board -----------------------------------------------------------------------

    def _update_board(self, plans: list[Plan]) -> None:
        beds: dict[str, Json] = {}
        values: dict[tuple[str, str], Json] = {}
        now = now_us()
        for plan in plans:
            if plan.row.channel != "hl7":
                continue  # home devices are not ICU beds
            key, label = fhir.bed_label(plan.bed, plan.mds.removeprefix("eui64-").upper())
            beds[key] = {
                "bed_key": key,
                "label": label[:200],
                "unit": plan.bed.point_of_care[:100] if plan.bed else "",
                "location_id": plan.location_id or "",
                "patient_id": plan.patient_id,
                "provisional": plan.provisional,
                "device_id": plan.mds,
                "updated_at": now,
            }
            for reading, oid, _identifier, _device in plan.observations:
                metric = metric_for(reading.code, reading.mnemonic)
                if metric is None or reading.value_type != "NM":
                    continue
                observed = _epoch_us(reading.time)
                previous = values.get((key, metric.key))
                if previous and previous["observed_at"] > observed:
                    continue
                abnormal = any(f not in ("N", "") for f in reading.flags) or out_of_range(
                    metric.key, reading.value
                )
                values[(key, metric.key)] = {
                    "bed_key": key,
                    "metric": metric.key,
                    "value": reading.value,
                    "unit": reading.unit or metric.ucum,
                    "observed_at": observed,
                    "abnormal": abnormal,
                    "observation_id": oid,
                }
        if not beds:
            return
        dialect = sqlite if self.engine.dialect.name == "sqlite" else postgresql
        bed_insert = dialect.insert(bed_tbl)
        value_insert = dialect.insert(bed_value)
        with self.engine.connect() as conn:
            if self.engine.dialect.name == "sqlite":
                conn.execution_options(sqlite_begin="BEGIN IMMEDIATE")
            with conn.begin():
                conn.execute(
                    bed_insert.on_conflict_do_update(
                        index_elements=["bed_key"],
                        set_={
                            c: bed_insert.excluded[c]
                            for c in (
                                "label",
                                "unit",
                                "location_id",
                                "patient_id",
                                "provisional",
                                "device_id",
                                "updated_at",
                            )
                        },
                    ),
                    list(beds.values()),
                )
                if values:
                    conn.execute(
                        value_insert.on_conflict_do_update(
                            index_elements=["bed_key", "metric"],
                            set_={
                                c: value_insert.excluded[c]
                                for c in (
                                    "value",
                                    "unit",
                                    "observed_at",
                                    "abnormal",
                                    "observation_id",
                                )
                            },
                            where=value_insert.excluded.observed_at >= bed_value.c.observed_at,
                        ),
                        list(values.values()),
                    )


def _epoch_us(text: str) -> int:
    value = text if "T" in text else text + "T00:00:00+00:00"
    return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1_000_000)


def _rejected_resource(plan: Plan, reading: Reading, exc: FhirError) -> MessageRejected:
    if plan.row.channel == "mqtt":
        return MessageRejected(
            f"measurement {reading.obx}: {exc}",
            segment="OBX",
            sequence=reading.obx,
            field=5,
            code=DATA_TYPE_ERROR,
        )
    return MessageRejected(
        f"the observation cannot be recorded: {exc}",
        segment="OBX",
        sequence=reading.obx,
        field=5,
        code=DATA_TYPE_ERROR,
    )
