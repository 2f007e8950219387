"""The journal: where it lives, group commits with the mapper's outcomes, duplicates."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from hygie.devices.journal import Incoming, Journal, Outcome, journal_url, open_journal
from hygie.devices.tables import message
from hygie.platform import Platform


def incoming(control: str, sender: str = "MON|ICU") -> Incoming:
    return Incoming("hl7", sender, control, "utf-8", f"MSH|{control}".encode())


def test_journal_url() -> None:
    assert (
        journal_url("sqlite:////var/lib/hygie/hygie.db")
        == "sqlite:////var/lib/hygie/hygie.devices-journal.db"
    )
    assert journal_url("sqlite:///var/data") == "sqlite:///var/data.devices-journal.db"
    assert journal_url("sqlite:///:memory:") is None
    assert journal_url("sqlite://") is None
    assert journal_url("postgresql+psycopg://postgres@127.0.0.1/test") is None


def test_sqlite_journal_is_a_file_of_its_own(platform: Platform) -> None:
    journal = open_journal(platform)
    assert open_journal(platform) is journal
    journal.append([incoming("J-1")])
    with platform.engine.connect() as conn:
        in_platform_db = conn.execute(select(func.count()).select_from(message)).scalar_one()
    if platform.engine.dialect.name == "sqlite":
        path = Path(platform.settings.database_url.removeprefix("sqlite:///"))
        assert path.with_name("hygie.devices-journal.db").exists()
        assert journal.engine is not platform.engine
        assert in_platform_db == 0
    else:
        assert journal.engine is platform.engine
        assert in_platform_db == 1
    assert journal.counts() == {"pending": 1}


def test_outcomes_commit_with_the_next_batch_and_answer_its_copies(platform: Platform) -> None:
    journal = open_journal(platform)
    [first, second] = journal.append([incoming("O-1"), incoming("O-2")])
    error = {"text": "bad", "segment": "OBX", "sequence": 2, "field": 5, "code": 102}
    done = [
        Outcome(first.journal_id, "stored", None, 8),
        Outcome(second.journal_id, "rejected", error),
    ]
    # copies of both arrive in the batch that records their outcomes
    results = journal.append([incoming("O-1"), incoming("O-3"), incoming("O-2")], finished=done)
    assert [(r.duplicate, r.status) for r in results] == [
        (True, "stored"),
        (False, "pending"),
        (True, "rejected"),
    ]
    assert results[2].error == error
    assert journal.outcome(first.journal_id).observations == 8
    # the same control id from another sender is another message
    [other] = journal.append([incoming("O-1", sender="VENT|ICU")])
    assert not other.duplicate
    # a copy twice within one batch: stored once
    twice = journal.append([incoming("O-4"), incoming("O-4")])
    assert twice[0].journal_id == twice[1].journal_id and twice[1].duplicate
    assert journal.counts() == {"pending": 3, "stored": 1, "rejected": 1}
    assert [r.control_id for r in journal.pending(10)] == ["O-3", "O-1", "O-4"]
    assert [r.control_id for r in journal.pending(10, skip={results[1].journal_id})] == [
        "O-1",
        "O-4",
    ]
    assert journal.pending_among([first.journal_id, other.journal_id]) == {other.journal_id}
    journal.checkpoint()


def test_postgresql_journal_commits_may_skip_the_wait_for_the_disk(platform: Platform) -> None:
    journal = open_journal(platform)
    assert journal.synchronous_commit
    if journal.is_sqlite:
        return
    fast = Journal(platform.engine, synchronous_commit=False)
    for j, expected in ((journal, "on"), (fast, "off")):
        with j._writing() as conn:
            assert conn.exec_driver_sql("SHOW synchronous_commit").scalar() == expected
    [appended] = fast.append([incoming("F-1")])
    assert journal.outcome(appended.journal_id).status == "pending"


def test_checkpoint_keeps_the_sqlite_log_bounded(platform: Platform) -> None:
    journal = open_journal(platform)
    if not journal.is_sqlite:
        return
    wal = Path(str(journal.engine.url.database) + "-wal")

    def write(prefix: str) -> None:
        for k in range(60):
            journal.append([incoming(f"{prefix}-{k}-{i}") for i in range(4)])

    write("A")
    journal.checkpoint()  # small log: copied, left where it is
    write("B")
    size = wal.stat().st_size
    journal.checkpoint(restart_above=0)  # copied, and the next commit starts it afresh
    write("C")
    # the log was written again from its start (not appended to: about twice the size)
    assert wal.stat().st_size < 1.5 * size
    assert journal.counts() == {"pending": 3 * 60 * 4}
