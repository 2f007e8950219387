"""The scheduling service for one platform: what routes, pages and commands call.

``SchedulingService`` ties the modules together inside transactions: a booking and
its reminders are one commit; a cancellation, the freed slot's offer to the waiting
list and the SMS that carries it are one commit. It knows nothing of HTTP. A
background worker (``start_worker``) runs due jobs, writes pending bookings to the
store as Appointments and hands queued messages to the channels; ``run_once`` does the
same in the foreground (``hygie scheduling run-jobs``, tests).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import threading
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, select

from hygie.platform import Platform
from hygie.scheduling import agendas as ag
from hygie.scheduling import booking as bk
from hygie.scheduling import jobs, messages, projection, slots, verification, waitlist
from hygie.scheduling import tables as t
from hygie.scheduling.errors import InvalidInput, NotFound, VerificationFailed
from hygie.scheduling.model import (
    Agenda,
    AppointmentType,
    Booking,
    Closure,
    OpeningRule,
    Patient,
    SlotView,
    to_local,
)
from hygie.scheduling.transactions import reading, writing

if TYPE_CHECKING:
    from hygie.scheduling.reception import PreadmissionDesk

log = logging.getLogger("hygie.scheduling")


@dataclass(frozen=True)
class Options:
    """The service's settings (``[scheduling]`` in hygie.toml, ``settings.extra``)."""

    #: How long a freed slot is held for the waiting-list entry it is offered to.
    offer_minutes: int = 30
    #: Seconds between two passes of the background worker.
    worker_interval_s: float = 2.0
    #: Largest uploaded pre-admission document, in bytes.
    max_upload_bytes: int = 5 * 1024 * 1024
    #: Most documents in one pre-admission file.
    max_uploads: int = 10
    #: Whether the worker starts with the service (off for benchmarks of the booking path).
    worker: bool = True

    @classmethod
    def from_extra(cls, extra: dict[str, Any]) -> Options:
        raw = extra.get("scheduling", {}) if isinstance(extra, dict) else {}
        known = {k: raw[k] for k in cls.__dataclass_fields__ if k in raw}
        return cls(**known)


def _now() -> int:
    return int(time.time())


def _key_file(var_dir: Path) -> bytes:
    """The HMAC key of verification codes, created on first use (mode 0600)."""
    folder = var_dir / "scheduling"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "verification.key"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(os.urandom(32))
    return path.read_bytes()


class SchedulingService:
    """Appointments and pre-admission on one platform's database and store."""

    def __init__(self, platform: Platform, options: Options | None = None) -> None:
        self.platform = platform
        self.engine = platform.engine
        self.options = options or Options.from_extra(platform.settings.extra)
        self.base_url = platform.settings.base_url.rstrip("/")
        self._key: bytes | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.clock = _now

    @classmethod
    def for_platform(cls, platform: Platform) -> SchedulingService:
        """The platform's one service (built on first use, worker started)."""
        service = platform.parts.get("scheduling")
        if service is None:
            service = cls(platform)
            platform.parts["scheduling"] = service
            if service.options.worker:
                service.start_worker()
        return service  # type: ignore[no-any-return]

    @property
    def repository(self) -> Any:
        store = self.platform.parts.get("store")
        if store is None:
            from hygie.store.server import open_store

            store = open_store(self.platform)
        return store.repository

    @property
    def preadmission(self) -> PreadmissionDesk:
        """Online pre-admission files (``reception.py``)."""
        from hygie.scheduling.reception import PreadmissionDesk

        return PreadmissionDesk(self)

    @property
    def key(self) -> bytes:
        if self._key is None:
            self._key = _key_file(self.platform.settings.var_dir)
        return self._key

    # --- availability -----------------------------------------------------------------

    def put_appointment_type(self, kind: AppointmentType) -> None:
        with writing(self.engine) as conn:
            ag.put_appointment_type(conn, kind)

    def appointment_types(self) -> dict[str, AppointmentType]:
        with reading(self.engine) as conn:
            return ag.appointment_types(conn)

    def put_agenda(self, agenda: Agenda) -> None:
        """Create or replace an agenda, and its Schedule in the store."""
        from hygie.store.model import ID_RE

        if not ID_RE.match(agenda.id):
            raise InvalidInput("an agenda id is 1 to 64 letters, digits, '-' or '.'")
        with writing(self.engine) as conn:
            ag.put_agenda(conn, agenda)
        resource = projection.schedule_resource(agenda)
        self.repository.update("Schedule", agenda.id, resource)

    def agendas(self, site_id: str | None = None) -> list[Agenda]:
        with reading(self.engine) as conn:
            return ag.list_agendas(conn, site_id)

    def agenda(self, agenda_id: str) -> Agenda:
        with reading(self.engine) as conn:
            return ag.get_agenda(conn, agenda_id)

    def add_rule(self, rule: OpeningRule) -> int:
        with writing(self.engine) as conn:
            return ag.add_rule(conn, rule)

    def rules(self, agenda_id: str) -> list[OpeningRule]:
        with reading(self.engine) as conn:
            return ag.rules_of(conn, agenda_id)

    def remove_rule(self, rule_id: int) -> int:
        with writing(self.engine) as conn:
            return ag.remove_rule(conn, rule_id, self.clock())

    def add_closure(self, closure: Closure) -> tuple[int, list[str]]:
        with writing(self.engine) as conn:
            return ag.add_closure(conn, closure)

    def put_site_cap(self, site_id: str, max_arrivals: int, window_min: int = 15) -> None:
        with writing(self.engine) as conn:
            ag.put_site_cap(conn, site_id, max_arrivals, window_min)

    def generate(self, first: date, last: date, agenda_id: str | None = None) -> int:
        """Generate the slots of one agenda (or all) from ``first`` to ``last``."""
        ids = [agenda_id] if agenda_id else [a.id for a in self.agendas() if a.active]
        total = 0
        for one in ids:
            with writing(self.engine) as conn:
                total += ag.generate(conn, one, first, last)
        return total

    # --- finding slots ----------------------------------------------------------------

    def search(self, *, first_utc: int | None = None, last_utc: int | None = None,
               type_code: str | None = None, service_code: str | None = None,
               site_id: str | None = None, agenda_id: str | None = None,
               limit: int = 50) -> list[SlotView]:
        now = self.clock()
        first = max(first_utc or now, now + 60)
        last = last_utc or first + 90 * 86400
        if last <= first:
            return []
        with reading(self.engine) as conn:
            return slots.search(conn, first_utc=first, last_utc=last, type_code=type_code,
                                service_code=service_code, site_id=site_id,
                                agenda_id=agenda_id, limit=limit)

    def slot(self, slot_id: int) -> SlotView:
        with reading(self.engine) as conn:
            found = slots.get_slot(conn, slot_id)
        if found is None:
            raise NotFound(f"no slot {slot_id}")
        return found

    # --- verification -----------------------------------------------------------------

    def request_code(self, raw_phone: str, client: str | None = None) -> str:
        """Send a verification code by SMS to a mobile number; returns the E.164 number.

        ``client`` is the asking network address, for the per-address rate limit.
        """
        phone = verification.normalize_mobile(raw_phone)
        now = self.clock()
        with writing(self.engine) as conn:
            code = verification.request_code(conn, phone, self.key, now, client)
            messages.queue(conn, "sms", phone,
                           f"Hygie : votre code de vérification est {code}. "
                           "Il expire dans 10 minutes.", "verification", now)
        return phone

    def confirm_code(self, raw_phone: str, code: str) -> str:
        phone = verification.normalize_mobile(raw_phone)
        with writing(self.engine) as conn:
            token = verification.confirm(conn, phone, code, self.key, self.clock())
        if token is None:
            raise VerificationFailed("wrong code")
        return token

    def verified_phone(self, token: str) -> str:
        with reading(self.engine) as conn:
            return verification.verified_phone(conn, token, self.clock())

    # --- booking ----------------------------------------------------------------------

    def _after_booking(self, conn: Connection, booking: Booking, slot: bk.Claimed,
                       now: int) -> None:
        """Reminders, confirmation SMS, and a pre-admission file when the type needs one."""
        zone = ZoneInfo(slot.timezone)
        jobs.schedule_reminders(conn, booking.id, booking.start_utc, zone, now)
        if slot.preadmission:
            p = booking.patient
            self.preadmission.invite_in(conn, site_id=slot.site_id,
                                        planned_start_utc=booking.start_utc, family=p.family,
                                        given=p.given, birth_date=p.birth_date, phone=p.phone,
                                        booking_id=booking.id)
        if booking.patient.phone and booking.manage_secret:
            when = to_local(booking.start_utc, zone).strftime("%d/%m/%Y à %H:%M")
            messages.queue(conn, "sms", booking.patient.phone,
                           f"Hygie : rendez-vous confirmé le {when}. Annuler ou déplacer : "
                           f"{self.manage_url(booking.manage_secret)}", "confirmation", now)

    def manage_secret(self, booking_id: str) -> str:
        """The secret of a booking's manage link: an HMAC of its id under the server key,
        so that every message repeats the same link and no secret is stored."""
        mac = hmac.new(self.key, f"manage:{booking_id}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac[:24]).decode().rstrip("=")

    def manage_url(self, secret: str) -> str:
        return f"{self.base_url}/scheduling/manage/{secret}"

    def book(self, slot_id: int, patient: Patient, *, source: str = "staff") -> Booking:
        """Book a slot; exactly one of any number of concurrent attempts succeeds."""
        _check_patient(patient)
        now = self.clock()
        with writing(self.engine) as conn:
            booking, slot = bk.book(conn, slot_id, patient, source=source, now=now,
                                    secret_for=self.manage_secret)
            self._after_booking(conn, booking, slot, now)
        return booking

    def book_verified(self, slot_id: int, patient: Patient, token: str) -> Booking:
        """Public booking: the mobile number must be the one the token proved."""
        phone = self.verified_phone(token)
        if patient.phone and verification.normalize_mobile(patient.phone) != phone:
            raise VerificationFailed("this is not the number that was verified")
        return self.book(slot_id, Patient(patient.family, patient.given, patient.birth_date,
                                          phone, patient.email), source="public")

    def booking(self, booking_id: str) -> Booking:
        with reading(self.engine) as conn:
            return bk.get(conn, booking_id)

    def booking_by_secret(self, secret: str) -> Booking:
        with reading(self.engine) as conn:
            return bk.by_secret(conn, secret)

    def _freed(self, conn: Connection, slot_id: int | None, now: int) -> None:
        while slot_id is not None:
            offer = waitlist.offer_slot(conn, slot_id, now, self.options.offer_minutes * 60)
            if offer is None:
                return
            slot = slots.get_slot(conn, slot_id)
            assert slot is not None
            when = to_local(slot.start_utc).strftime("%d/%m/%Y à %H:%M")
            messages.queue(conn, "sms", offer.phone,
                           f"Hygie : un rendez-vous s'est libéré le {when} ({slot.site_name}). "
                           f"Réservez-le avant {to_local(offer.until_utc).strftime('%H:%M')} : "
                           f"{self.base_url}/scheduling/offer/{offer.secret}", "waitlist", now)
            jobs.schedule(conn, "offer-expiry", offer.until_utc,
                          {"entry": offer.entry_id, "slot": offer.slot_id})
            return

    def cancel(self, booking_id: str) -> Booking:
        now = self.clock()
        with writing(self.engine) as conn:
            booking, freed = bk.cancel(conn, booking_id, now)
            jobs.cancel_for_booking(conn, booking_id)
            self._freed(conn, freed, now)
        return booking

    def move(self, booking_id: str, new_slot_id: int) -> Booking:
        now = self.clock()
        with writing(self.engine) as conn:
            booking, freed = bk.move(conn, booking_id, new_slot_id, now)
            jobs.cancel_for_booking(conn, booking_id)
            zone = ZoneInfo(ag.get_agenda(conn, booking.agenda_id).timezone)
            jobs.schedule_reminders(conn, booking.id, booking.start_utc, zone, now)
            self._freed(conn, freed, now)
        return booking

    def bookings(self, agenda_ids: list[str], lo: int, hi: int) -> list[Booking]:
        with reading(self.engine) as conn:
            return bk.bookings_of(conn, agenda_ids, lo, hi)

    def day_view(self, agenda_ids: list[str], lo: int, hi: int) -> list[dict[str, Any]]:
        with reading(self.engine) as conn:
            return slots.day_view(conn, agenda_ids, lo, hi)

    # --- waiting list -----------------------------------------------------------------

    def join_waitlist(self, patient: Patient, token: str, type_code: str, earliest_utc: int,
                      latest_utc: int, site_id: str | None = None,
                      service_code: str | None = None) -> int:
        _check_patient(patient)
        phone = self.verified_phone(token)
        if type_code not in self.appointment_types():
            raise InvalidInput(f"unknown appointment type {type_code!r}")
        who = Patient(patient.family, patient.given, patient.birth_date, phone, patient.email)
        with writing(self.engine) as conn:
            return waitlist.join(conn, who, type_code, earliest_utc, latest_utc, self.clock(),
                                 site_id, service_code)

    def offer(self, secret: str) -> tuple[SlotView, Patient]:
        with reading(self.engine) as conn:
            row, patient = waitlist.offered_entry(conn, secret, self.clock())
            slot = slots.get_slot(conn, row.offer_slot)  # type: ignore[attr-defined]
        assert slot is not None
        return slot, patient

    def claim_offer(self, secret: str) -> Booking:
        now = self.clock()
        with writing(self.engine) as conn:
            row, patient = waitlist.offered_entry(conn, secret, now)
            booking, slot = bk.book(conn, row.offer_slot, patient,  # type: ignore[attr-defined]
                                    source="waitlist", now=now,
                                    hold_entry=row.id,  # type: ignore[attr-defined]
                                    secret_for=self.manage_secret)
            waitlist.mark_booked(conn, row.id)  # type: ignore[attr-defined]
            self._after_booking(conn, booking, slot, now)
        return booking

    def waitlist(self, status: str = "waiting") -> list[dict[str, Any]]:
        with reading(self.engine) as conn:
            return waitlist.entries(conn, status)

    # --- background work --------------------------------------------------------------

    def _run_reminder(self, conn: Connection, booking_id: str | None, payload: dict[str, Any],
                      now: int) -> None:
        row = conn.execute(select(t.booking).where(t.booking.c.id == booking_id)).first()
        if row is None or row.status != "booked" or row.start_utc != payload["start"]:
            return
        agenda = ag.get_agenda(conn, row.agenda_id)
        kinds = ag.appointment_types(conn)
        zone = ZoneInfo(agenda.timezone)
        when = to_local(row.start_utc, zone)
        what = kinds[row.type_code].label if row.type_code in kinds else row.type_code
        day = "demain" if payload["which"] == "day-before" else "aujourd'hui"
        link = self.manage_url(self.manage_secret(row.id))
        text = (f"Hygie : rappel, {what} {day} à {when.strftime('%H:%M')} "
                f"({agenda.site_name}). Pour annuler : {link}")
        if row.phone:
            messages.queue(conn, "sms", row.phone, text, "reminder", now)
        if row.email:
            body = (f"Bonjour {row.given} {row.family},\n\nNous vous rappelons votre rendez-vous "
                    f"({what}) le {when.strftime('%d/%m/%Y à %H:%M')} avec {agenda.display}, "
                    f"{agenda.site_name}.\n\nSi vous ne pouvez pas venir, annulez-le ou "
                    f"déplacez-le ici : {link}\n")
            messages.queue(conn, "email", row.email, body, "reminder", now,
                           subject=f"Rappel de votre rendez-vous du {when.strftime('%d/%m/%Y')}")

    def _run_offer_expiry(self, conn: Connection, _booking: str | None,
                          payload: dict[str, Any], now: int) -> None:
        if waitlist.expire_offer(conn, int(payload["entry"]), int(payload["slot"])):
            self._freed(conn, int(payload["slot"]), now)

    def run_once(self) -> dict[str, int]:
        """One pass of background work: due jobs, store projection, message hand-over."""
        ran = jobs.run_due(self.engine, {"reminder": self._run_reminder,
                                         "offer-expiry": self._run_offer_expiry}, self.clock())
        projected = self.project()
        sent = messages.hand_over(self.engine, messages.channels_transport(self.platform))
        return {"jobs": ran, "projected": projected, "handed": sent}

    def project(self) -> int:
        with reading(self.engine) as conn:
            agendas = {a.id: a for a in ag.list_agendas(conn)}
            kinds = ag.appointment_types(conn)
        total = 0
        while not self._stop.is_set():  # a stopping worker leaves the rest to the next start
            n = projection.project_pending(self.engine, self.repository, agendas, kinds)
            total += n
            if n == 0:
                break
        return total

    def start_worker(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="scheduling-worker",
                                        daemon=True)
        self._thread.start()
        self.platform.closers.append(self.stop_worker)

    def stop_worker(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            busy = False
            try:
                busy = any(self.run_once().values())
            except Exception as exc:  # the next pass retries
                # The type only: messages of store or database errors may carry names.
                log.error("scheduling worker pass failed: %s", type(exc).__name__)
            if not busy:  # sleep only when there was nothing to do
                self._stop.wait(self.options.worker_interval_s)


def _check_patient(patient: Patient) -> None:
    if not patient.family.strip() or not patient.given.strip():
        raise InvalidInput("the patient's family and given names are needed")
    try:
        born = date.fromisoformat(patient.birth_date)
    except ValueError as exc:
        raise InvalidInput("the birth date must be YYYY-MM-DD") from exc
    if born > date.today() or born.year < 1900:
        raise InvalidInput("the birth date is not plausible")
    if patient.email is not None and "@" not in patient.email:
        raise InvalidInput("the e-mail address is not valid")
