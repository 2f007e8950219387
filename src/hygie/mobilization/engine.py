"""The mobilization service for one platform: what routes, pages and commands call.

``MobilizationService`` ties the modules together: each launch, answer batch, timer
pass and close is one write transaction holding the campaign's lock, in which the
decision (``campaigns.py``), its consequences (``waves.advance``) and the messages they
call for (outgoing rows) commit together. After the commit the messages are handed to
the channels outbox (idempotent on their key) and alerts no longer needed are called
back. It knows nothing of HTTP.

A worker thread (``start_worker``) runs the timers (answer windows, deadlines), moves
people on when the channels report an alert failed, hands messages over and writes the
AuditEvents; ``run_once`` does the same in the foreground. Everything it needs is in
the tables, so a process started after a crash carries on: the timers are rows, and a
message decided before the crash is handed over with the key it had.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, bindparam, select, update

from hygie.mobilization import board as bd
from hygie.mobilization import campaigns as cp
from hygie.mobilization import directory as dr
from hygie.mobilization import messages as msg
from hygie.mobilization import plans as pl
from hygie.mobilization import records
from hygie.mobilization import tables as t
from hygie.mobilization.errors import ConfirmationRequired
from hygie.mobilization.model import Campaign, ContactState, Plan, Staff
from hygie.mobilization.transactions import chunks, lock_campaign, now_ms, writing
from hygie.mobilization.waves import StepResult, advance, due_campaigns
from hygie.platform import Platform

log = logging.getLogger("hygie.mobilization")


@dataclass(frozen=True)
class Options:
    """The service's settings (``[mobilization]`` in hygie.toml, ``settings.extra``)."""

    #: Whether the worker thread starts with the service.
    worker: bool = True
    #: Longest sleep of the worker between two passes (an answer wakes it at once).
    worker_interval_s: float = 0.25
    #: How often the statuses of pending alerts are read to move people on as soon as
    #: their alert failed (a whole wave's statuses: not on every pass).
    failure_check_s: float = 5.0
    #: Most messages handed to the channels in one transaction.
    handover_batch: int = 2000

    @classmethod
    def from_extra(cls, extra: dict[str, Any]) -> Options:
        raw = extra.get("mobilization", {}) if isinstance(extra, dict) else {}
        return cls(**{k: raw[k] for k in cls.__dataclass_fields__ if k in raw})


def confirmation_word(exercise: bool) -> str:
    """What a launch must be confirmed with: the mode, spelled out, so that a real alert
    is never sent by a client that meant an exercise (or the other way round)."""
    return "EXERCICE" if exercise else "ALERTE"


class MobilizationService:
    """Staff directory, plans and campaigns on one platform's database."""

    def __init__(self, platform: Platform, options: Options | None = None) -> None:
        self.platform = platform
        self.engine: Engine = platform.engine
        self.options = options or Options.from_extra(platform.settings.extra)
        self.clock: Callable[[], int] = now_ms
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_failure_check = 0.0
        self._handover_lock = threading.Lock()
        #: Called after each commit that changed a campaign (tests, benchmarks).
        self.listeners: list[Callable[[str], None]] = []
        #: Board streams of this process waiting for news, by campaign.
        self._watchers: dict[str, set[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = {}
        self._watch_lock = threading.Lock()

    @classmethod
    def for_platform(cls, platform: Platform) -> MobilizationService:
        """The platform's one service (built on first use, answers routed here, worker
        started when the options say so)."""
        service = platform.parts.get("mobilization")
        if service is None:
            service = cls(platform)
            platform.parts["mobilization"] = service
            service.register_answers()
            if service.options.worker:
                service.start_worker()
        return service  # type: ignore[no-any-return]

    @property
    def channels(self) -> Any:
        from hygie.channels import channels_for

        return channels_for(self.platform)

    @property
    def repository(self) -> Any:
        store = self.platform.parts.get("store")
        if store is None:
            from hygie.store.server import open_store

            store = open_store(self.platform)
        return store.repository

    def register_answers(self) -> None:
        """Route the answers of every campaign message here (batch handler)."""
        self.channels.register_batch_handler(msg.OWNER_PREFIX, self.on_answers)

    # --- directory ----------------------------------------------------------------------

    def sync_directory(self) -> int:
        """Rebuild the staff directory from the store's PractitionerRoles."""
        return dr.sync_directory(self.engine, self.repository, self.clock())

    def import_csv(self, data: bytes) -> dr.ImportReport:
        return dr.import_csv(self.engine, self.repository, data, self.clock())

    def staff(self, **filters: Any) -> list[Staff]:
        return dr.list_staff(self.engine, **filters)

    def directory_summary(self) -> dr.DirectorySummary:
        return dr.summary(self.engine)

    # --- plans --------------------------------------------------------------------------

    def save_plan(self, plan: Plan) -> Plan:
        with writing(self.engine) as conn:
            return pl.save_plan(conn, plan, self.clock())

    def plan(self, plan_id: str) -> Plan:
        return pl.get_plan(self.engine, plan_id)

    def plans(self) -> list[Plan]:
        return pl.list_plans(self.engine)

    def directory_labels(self) -> tuple[dict[str, str], dict[str, str]]:
        """What the directory calls each role code and each unit id, so that a plan's
        needs read "Infirmier de réanimation (Réanimation, CH ...)" rather than as codes."""
        s = t.staff.c
        with self.engine.connect() as conn:
            roles = dict(conn.execute(select(s.role_code, s.role_label)
                                      .where(s.role_label.is_not(None)).distinct()).all())
            units = dict(conn.execute(select(s.unit_id, s.unit_label)
                                      .where(s.unit_id.is_not(None), s.unit_label.is_not(None))
                                      .distinct()).all())
        return roles, units

    def archive_plan(self, plan_id: str) -> None:
        with writing(self.engine) as conn:
            pl.archive_plan(conn, plan_id, self.clock())

    # --- campaigns ----------------------------------------------------------------------

    def launch(
        self,
        plan_id: str,
        level: int,
        *,
        exercise: bool,
        launched_by: str,
        confirm: str | None,
        launch_key: str | None = None,
        note: str | None = None,
        launched_by_ref: str | None = None,
    ) -> Campaign:
        """Launch one level of a plan, as a real alert or as an exercise.

        ``confirm`` must be :func:`confirmation_word` of the mode. The first wave is
        decided in the launch's transaction; its messages leave right after.
        """
        return self.launch_once(
            plan_id,
            level,
            exercise=exercise,
            launched_by=launched_by,
            confirm=confirm,
            launch_key=launch_key,
            note=note,
            launched_by_ref=launched_by_ref,
        )[0]

    def launch_once(
        self,
        plan_id: str,
        level: int,
        *,
        exercise: bool,
        launched_by: str,
        confirm: str | None,
        launch_key: str | None = None,
        note: str | None = None,
        launched_by_ref: str | None = None,
    ) -> tuple[Campaign, bool]:
        """:meth:`launch`, saying whether it created the campaign (False: the
        ``launch_key`` was used before, and that campaign is returned)."""
        expected = confirmation_word(exercise)
        if (confirm or "").strip().upper() != expected:
            raise ConfirmationRequired(
                f"a {'drill' if exercise else 'real alert'} is launched only when confirmed "
                f"with the word {expected}"
            )
        plan = self.plan(plan_id)
        now = self.clock()
        with writing(self.engine) as conn:
            campaign_id, created = cp.launch(
                conn,
                plan,
                level,
                exercise=exercise,
                launched_by=launched_by,
                launched_by_ref=launched_by_ref,
                now=now,
                launch_key=launch_key,
                note_text=note,
            )
            lock_campaign(conn, campaign_id)
            result = advance(conn, campaign_id, now) if created else StepResult()
        if created:
            log.info("campaign %s launched (%s)", campaign_id, expected.lower())
        self._after(campaign_id, result)
        self._audit()
        return self.campaign(campaign_id), created

    def close(self, campaign_id: str, *, closed_by: str, confirm: bool) -> Campaign:
        """Close a campaign: everyone asked and not declined is stood down."""
        if not confirm:
            raise ConfirmationRequired("closing a campaign stands everyone down: confirm it")
        with writing(self.engine) as conn:
            lock_campaign(conn, campaign_id)
            result = cp.close(conn, campaign_id, closed_by=closed_by, now=self.clock())
        self._after(campaign_id, result)
        self._audit()
        return self.campaign(campaign_id)

    def campaign(self, campaign_id: str) -> Campaign:
        with self.engine.connect() as conn:
            return bd.get_campaign(conn, campaign_id)

    def campaigns(self, **filters: Any) -> list[Campaign]:
        with self.engine.connect() as conn:
            return bd.list_campaigns(conn, **filters)

    def board(self, campaign_id: str, after: int = 0) -> dict[str, Any]:
        with self.engine.connect() as conn:
            return bd.board(conn, campaign_id, after)

    def board_version(self, campaign_id: str) -> int:
        with self.engine.connect() as conn:
            return bd.version(conn, campaign_id)

    @contextmanager
    def watching(self, campaign_id: str) -> Iterator[asyncio.Event]:
        """An event of the running asyncio loop, set when a step of this process
        commits a change to the campaign: a board stream sends the news at once
        instead of finding it at its next look at the journal. Changes committed by
        other processes are not signalled; the stream's look finds those."""
        entry = (asyncio.get_running_loop(), asyncio.Event())
        with self._watch_lock:
            self._watchers.setdefault(campaign_id, set()).add(entry)
        try:
            yield entry[1]
        finally:
            with self._watch_lock:
                waiting = self._watchers.get(campaign_id, set())
                waiting.discard(entry)
                if not waiting:
                    self._watchers.pop(campaign_id, None)

    def _signal(self, campaign_id: str) -> None:
        with self._watch_lock:
            waiting = list(self._watchers.get(campaign_id, ()))
        for loop, event in waiting:
            # A closed loop raises RuntimeError: its stream is gone.
            with suppress(RuntimeError):
                loop.call_soon_threadsafe(event.set)

    def journal(self, campaign_id: str, after: int = 0, limit: int = 200) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return bd.journal(conn, campaign_id, after, limit)

    # --- answers --------------------------------------------------------------------------

    def on_answers(self, answers: Sequence[Any]) -> None:
        """Batch answer handler (``hygie.channels``): apply every answer, ask the
        replacements and stand people down in one transaction, then send the replies."""
        grouped: dict[str, list[cp.Incoming]] = {}
        for answer in answers:
            found = msg.contact_of_owner(answer.owner)
            if found is None:
                continue
            campaign_id, contact_id = found
            grouped.setdefault(campaign_id, []).append(
                cp.Incoming(
                    id=answer.id,
                    campaign_id=campaign_id,
                    contact_id=contact_id,
                    channel=str(answer.channel),
                    text=answer.text or "",
                    value=answer.value,
                    received_ms=answer.received_ms,
                )
            )
        if not grouped:
            return
        now = self.clock()
        results: dict[str, StepResult] = {}
        with writing(self.engine) as conn:
            for campaign_id in sorted(grouped):
                lock_campaign(conn, campaign_id)
                if cp.apply_answers(conn, campaign_id, grouped[campaign_id], now):
                    result = advance(conn, campaign_id, now)
                    result.changed = True
                    results[campaign_id] = result
        # The replies are handed over by the worker when it runs: this thread is the
        # channels dispatcher's, and the next answers wait for it.
        inline = not self.worker_running
        for campaign_id, result in results.items():
            self._after(campaign_id, result, hand_over=inline)

    # --- background work ----------------------------------------------------------------

    @property
    def worker_running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _after(self, campaign_id: str, result: StepResult, *, hand_over: bool = True) -> None:
        """What follows a commit: wake the board streams, call alerts back, hand
        messages over (here, or by the worker when ``hand_over`` is False), tell
        listeners."""
        if result.changed:
            self._signal(campaign_id)
        if result.cancel_ids:
            try:
                self.channels.cancel_messages(result.cancel_ids, "stood down")
            except Exception as exc:  # the stand-down message follows anyway
                log.warning("calling alerts back failed: %s", type(exc).__name__)
        if result.queued or result.cancel_ids:
            if hand_over:
                try:
                    self.hand_over()
                except Exception as exc:  # the worker hands them over on its next pass
                    log.warning("hand-over failed: %s", type(exc).__name__)
            self._wake.set()
        if result.changed:
            for listener in list(self.listeners):
                listener(campaign_id)

    def hand_over(self) -> int:
        """Pass outgoing rows to the channels outbox (idempotent keys); return how many."""
        from hygie.channels import Channel, InvalidMessage, OutboundMessage

        total = 0
        with self._handover_lock:
            while True:
                o = t.outgoing.c
                with self.engine.connect() as conn:
                    rows = conn.execute(
                        select(t.outgoing, t.campaign.c.exercise)
                        .join(t.campaign, t.campaign.c.id == o.campaign_id)
                        .where(o.message_id.is_(None), o.cancelled.is_(False), o.error.is_(None))
                        .order_by(o.created_ms, o.key)
                        .limit(self.options.handover_batch)
                    ).all()
                if not rows:
                    return total
                messages = [
                    OutboundMessage(
                        idempotency_key=r.key,
                        owner=msg.owner(r.campaign_id, r.contact_id, r.exercise),
                        channel=Channel(r.channel),
                        recipient=r.recipient,
                        text=r.text,
                        subject=r.subject,
                        expected_answers=r.expected,
                        recipient_ref=r.recipient_ref,
                        ttl_s=r.ttl_s,
                    )
                    for r in rows
                ]
                done: list[tuple[str, str]] = []
                refused: list[tuple[Any, str]] = []
                try:
                    ids = self.channels.enqueue_many(messages)
                    done = [(r.key, mid) for r, mid in zip(rows, ids, strict=True)]
                except InvalidMessage:
                    for r, m in zip(rows, messages, strict=True):  # find the bad ones
                        try:
                            done.append((r.key, self.channels.enqueue(m).id))
                        except InvalidMessage as exc:
                            refused.append((r, str(exc)[:300]))
                self._record_handed(done, refused)
                total += len(done)

    def _record_handed(self, done: list[tuple[str, str]], refused: list[tuple[Any, str]]) -> None:
        o = t.outgoing.c
        with writing(self.engine) as conn:
            stmt = (
                update(t.outgoing).where(o.key == bindparam("k")).values(message_id=bindparam("m"))
            )
            for part in chunks(done, 1000):
                conn.execute(stmt, [{"k": k, "m": m} for k, m in part])
            now = self.clock()
            for row, error in refused:
                conn.execute(update(t.outgoing).where(o.key == row.key).values(error=error))
                if row.kind == "alert":  # move the person on at the next pass
                    conn.execute(
                        update(t.contact)
                        .where(
                            t.contact.c.id == row.contact_id,
                            t.contact.c.state == ContactState.PENDING,
                            t.contact.c.attempts == row.attempt,
                        )
                        .values(due_ms=now)
                    )
                log.warning("a %s message was refused by the channels", row.channel)

    def failed_alerts(self) -> dict[str, list[tuple[str, int, str]]]:
        """Pending people whose current alert the channels gave up on, by campaign."""
        c, o = t.contact.c, t.outgoing.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(c.campaign_id, c.id, c.attempts, o.message_id)
                .join(t.outgoing, (o.contact_id == c.id) & (o.attempt == c.attempts))
                .where(
                    c.state == ContactState.PENDING, o.kind == "alert", o.message_id.is_not(None)
                )
            ).all()
        if not rows:
            return {}
        statuses: dict[str, tuple[Any, str | None]] = {}
        for part in chunks([r.message_id for r in rows], 5000):
            statuses.update(self.channels.statuses(list(part)))
        out: dict[str, list[tuple[str, int, str]]] = {}
        for r in rows:
            status, error = statuses.get(r.message_id, (None, None))
            if status is not None and str(status) == "failed":
                out.setdefault(r.campaign_id, []).append((r.id, r.attempts, error or "failed"))
        return out

    def held_alerts(self, now: int) -> dict[str, set[str]]:
        """People whose answer window has passed but whose alert has not left yet
        (still to hand over, queued, or a call being placed), by campaign: the window
        is for answering, so they are not moved on before their alert is out."""
        c, o = t.contact.c, t.outgoing.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(c.campaign_id, c.id, o.message_id, o.error)
                .join(t.outgoing, (o.contact_id == c.id) & (o.attempt == c.attempts))
                .where(c.state == ContactState.PENDING, c.due_ms <= now, o.kind == "alert")
            ).all()
        if not rows:
            return {}
        handed = [r.message_id for r in rows if r.message_id is not None]
        statuses: dict[str, tuple[Any, str | None]] = {}
        for part in chunks(handed, 5000):
            statuses.update(self.channels.statuses(list(part)))
        out: dict[str, set[str]] = {}
        for r in rows:
            if r.message_id is None:
                waiting = r.error is None
            else:
                waiting = str(statuses.get(r.message_id, ("", None))[0]) in ("queued", "sending")
            if waiting:
                out.setdefault(r.campaign_id, set()).add(r.id)
        return out

    def run_once(self) -> dict[str, int]:
        """One pass: failures, due timers, hand-over, records; returns counts."""
        now = self.clock()
        failed: dict[str, list[tuple[str, int, str]]] = {}
        tick = time.monotonic()
        if tick - self._last_failure_check >= self.options.failure_check_s:
            self._last_failure_check = tick
            failed = self.failed_alerts()
        with self.engine.connect() as conn:
            due = set(due_campaigns(conn, now)) | set(failed)
        held = self.held_alerts(now) if due else {}
        stepped = 0
        for campaign_id in sorted(due):
            with writing(self.engine) as conn:
                lock_campaign(conn, campaign_id)
                result = advance(
                    conn,
                    campaign_id,
                    now,
                    failed.get(campaign_id, ()),
                    held.get(campaign_id, frozenset()),
                )
            self._after(campaign_id, result)
            stepped += 1
        handed = self.hand_over()
        audited = self._audit()
        return {
            "stepped": stepped,
            "handed": handed,
            "audited": audited,
            "failed": sum(len(v) for v in failed.values()),
        }

    def _audit(self) -> int:
        try:
            return records.write_pending(self.engine, self.repository)
        except Exception as exc:  # written by a later pass
            log.warning("campaign records not written yet: %s", type(exc).__name__)
            return 0

    def start_worker(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="mobilization-worker", daemon=True)
        self._thread.start()
        self.platform.closers.append(self.stop_worker)

    def stop_worker(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            busy = False
            try:
                done = self.run_once()
                busy = bool(done["stepped"] or done["handed"])
            except Exception as exc:  # the next pass retries
                log.error("mobilization worker pass failed: %s", type(exc).__name__)
            if not busy:
                self._wake.wait(self.options.worker_interval_s)
                self._wake.clear()
