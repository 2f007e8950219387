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


def test_messages_are_sealed_at_rest_and_bound_to_their_key(platform: Platform) -> None:
    journal = open_journal(platform)
    assert journal.codec is not None  # encryption at rest is on by default
    raw = b"MSH|^~\\&|MON|ICU|||20200401||ORU^R01|S-1|P|2.6\rPID|||0000000007||MARTIN^Claire"
    [a, b] = journal.append([
        Incoming("hl7", "MON|ICU", "S-1", "utf-8", raw),
        Incoming("hl7", "MON|ICU", "S-2", "utf-8", raw),
    ])
    with journal.engine.connect() as conn:
        stored = dict(conn.execute(select(message.c.id, message.c.raw)).all())
    assert b"MARTIN" not in stored[a.journal_id] and b"0000000007" not in stored[a.journal_id]
    assert [r.raw for r in journal.pending(10)] == [raw, raw]
    assert all(r.unreadable is None for r in journal.pending(10))
    # one message's sealed bytes copied onto the other's row: that row no longer opens
    with journal._writing() as conn:
        conn.execute(message.update().where(message.c.id == b.journal_id)
                     .values(raw=stored[a.journal_id]))
    first, second = journal.pending(10)
    assert first.raw == raw and first.unreadable is None
    assert second.raw == b"" and second.unreadable and "does not open" in second.unreadable


def test_messages_stay_in_clear_with_encryption_off(platform: Platform) -> None:
    journal = Journal(platform.engine)
    [appended] = journal.append([incoming("C-1")])
    with platform.engine.connect() as conn:
        raw = conn.execute(select(message.c.raw).where(message.c.id == appended.journal_id))
        assert raw.scalar_one() == b"MSH|C-1"
