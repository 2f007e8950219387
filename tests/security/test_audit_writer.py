"""The audit writer: who appends queued records, when, and that none is lost."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from hygie.security import audit_writer
from hygie.security.audit import AuditChain, AuditRecord, AuditWriter, verify
from hygie.security.installation import install
from hygie.security.tables import audit_log
from tests.security.territory import staff


@pytest.fixture
def chain(database_url: str, tmp_path: Path) -> Iterator[AuditChain]:
    from tests.security.territory import make_platform

    platform = make_platform(database_url, tmp_path / "var")
    yield install(platform).audit_chain
    platform.close()


def _facts(entity: str, address: str = "10.0.0.7") -> tuple[Any, ...]:
    """An interaction's facts as a request would queue them (see ``audit.Facts``)."""
    from hygie.security.audit import agent_facts, interaction_facts

    def finish(_facts: tuple[Any, ...]) -> tuple[tuple[Any, ...], frozenset[str]]:
        return interaction_facts(1_700_000_000_123_456, "read", "R", "0",
                                 agent_facts(staff("petit", {"nurse"}, "chu")), address,
                                 [entity], None, {"anne"}, None, False)

    return (finish,)


def _count(chain: AuditChain) -> int:
    with chain.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(audit_log)).scalar_one())


def _appenders(chain: AuditChain, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the threads that append batches, in order."""
    names: list[str] = []
    append = chain.append

    def spy(records: list[Any]) -> None:
        names.append(threading.current_thread().name)
        append(records)

    monkeypatch.setattr(chain, "append", spy)
    return names


def test_the_writer_thread_appends_within_the_interval(chain: AuditChain,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    writer = AuditWriter(chain, flush_interval_s=0.1)
    appenders = _appenders(chain, monkeypatch)
    writer.submit(_facts("Observation/o1"))
    deadline = time.monotonic() + 5
    while _count(chain) == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _count(chain) == 1
    assert appenders == ["hygie-audit"]
    writer.close()


def test_a_full_queue_is_appended_before_the_caller_goes_on(
        chain: AuditChain, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audit_writer, "MAX_QUEUED", 5)
    writer = AuditWriter(chain, flush_interval_s=60.0)
    for i in range(4):
        writer.submit(_facts(f"Observation/o{i}"))
    assert _count(chain) == 0
    writer.submit(_facts("Observation/o4"))
    assert _count(chain) == 5  # backpressure: nothing dropped, nothing left queued
    writer.close()
    assert verify(chain).ok


def test_a_caller_that_waits_appends_the_queue_itself(chain: AuditChain,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    writer = AuditWriter(chain, flush_interval_s=60.0)
    appenders = _appenders(chain, monkeypatch)
    writer.submit(_facts("Observation/o1"))
    assert writer.submit(AuditRecord(None, facts=_facts("Observation/o2")), wait=True)
    assert _count(chain) == 2
    assert appenders == [threading.current_thread().name]
    writer.close()


def test_flush_appends_everything_queued(chain: AuditChain) -> None:
    writer = AuditWriter(chain, flush_interval_s=60.0)
    for i in range(30):
        writer.submit(_facts(f"Observation/o{i}"))
    assert writer.flush()
    assert _count(chain) == 30
    writer.close()
    assert verify(chain).ok and verify(chain).checked == 30


def test_a_nul_in_a_fact_does_not_fail_its_batch(chain: AuditChain) -> None:
    """PostgreSQL keeps no NUL in text: the record is kept with a replacement character
    and still verifies, and the records around it are appended."""
    chain.append([_facts("Observation/before"), _facts("Patient/a\x00b", "10.0.\x000.1"),
                  _facts("Observation/after")])
    rows = list(chain.records())
    assert [row.entity for row in rows] == ["Observation/before", "Patient/a\ufffdb",
                                            "Observation/after"]
    assert rows[1].address == "10.0.\ufffd0.1"
    assert verify(chain).ok


def test_a_failed_batch_leaves_nothing_and_the_next_one_appends(
        chain: AuditChain, monkeypatch: pytest.MonkeyPatch) -> None:
    chain.append([_facts("Observation/o1")])

    def broken(_facts: tuple[Any, ...]) -> tuple[tuple[Any, ...], frozenset[str]]:
        raise RuntimeError("a record that cannot be made")

    with pytest.raises(RuntimeError):
        chain.append([_facts("Observation/o2"), (broken,)])
    chain.append([_facts("Observation/o3")])
    assert [row.entity for row in chain.records()] == ["Observation/o1", "Observation/o3"]
    assert [row.seq for row in chain.records()] == [1, 2]
    assert verify(chain).ok


def test_a_batch_fits_the_variable_limit_of_an_older_sqlite(chain: AuditChain) -> None:
    if not chain.is_sqlite:
        pytest.skip("a limit of SQLite builds")
    import sqlite3

    from sqlalchemy import event

    @event.listens_for(chain.engine, "checkout")
    def _older_limit(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
        dbapi_conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999)  # before 3.32

    writer = AuditWriter(chain, flush_interval_s=60.0)
    for i in range(300):  # large statements would need 4,096 variables
        writer.submit(_facts(f"Observation/o{i}"))
    assert writer.flush()
    assert _count(chain) == 300
    writer.close()
    assert verify(chain).ok
