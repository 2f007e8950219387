"""Real MLLP round trips with a gateway process: acknowledgment modes, NAKs, duplicates,
character sets, framing."""

from __future__ import annotations

import socket
import time

from hygie.devices.journal import open_journal
from hygie.platform import Platform
from hygie.store.interactions import StoreContext
from tests.devices.conftest import END, START, Gateway, MllpClient
from tests.devices.corpus import monitor, msh, obx, pump, replace_segment, ventilator, waveform


def observations(store: StoreContext) -> list[dict]:
    page = store.repository.search("Observation", [("_count", "500")])
    return [m.resource for m in page.matches]


def test_corpus_round_trips_and_acknowledgment_modes(
    gateway: Gateway, platform: Platform, store: StoreContext
) -> None:
    client = gateway.client()
    try:
        # IHE PCD-01 asks for application acks only (MSH-15 NE, MSH-16 AL): AA once stored
        for message in (monitor("RT-1"), ventilator("RT-2"), pump("RT-3"), waveform("RT-4")):
            ack = client.exchange(message)
            assert (ack.code, ack.err) == ("AA", None)
        assert len(observations(store)) == 8 + 7 + 6 + 1
        control = message.split("|")[9]
        assert ack.control_id == control
        assert ack.segment("MSH")[8] == "ACK^R01^ACK"
        # original mode: one AA after the store committed
        ack = client.exchange(monitor("RT-5", accept="", app=""))
        assert ack.code == "AA" and ack.control_id == "RT-5"
        assert len(observations(store)) == 30
        # enhanced mode, both acks: CA on commit, then AA
        client.send(monitor("RT-6", accept="AL", app="AL"))
        assert [client.receive().code, client.receive().code] == ["CA", "AA"]
        # commit ack only: CA, and the message still reaches the store
        assert client.exchange(monitor("RT-7", accept="AL", app="NE")).code == "CA"
        deadline = time.monotonic() + 20
        while len(observations(store)) < 46 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(observations(store)) == 46
    finally:
        client.close()


def test_naks_name_the_faulty_segment_and_field(gateway: Gateway) -> None:
    client = gateway.client()
    try:
        ack = client.exchange(
            replace_segment(monitor("N-1"), "MSH", msh("N-1", kind="ADT^A01^ADT_A01"))
        )
        assert ack.code == "CR"  # enhanced mode (MSH-16 AL): commit reject
        assert ack.control_id == "N-1"
        assert ack.err is not None and ack.err[2] == "MSH^1^9^1^1"
        ack = client.exchange(
            replace_segment(
                monitor("N-2", accept="", app=""),
                "MSH",
                msh("N-2", version="2.1", accept="", app=""),
            )
        )
        assert ack.code == "AR"
        ack = client.exchange(replace_segment(monitor("N-3"), "PID", "PID|||^^^X^PI"))
        assert ack.code == "AE" and ack.control_id == "N-3"
        assert ack.err is not None
        assert ack.err[2] == "PID^1^3^1" and ack.err[3].startswith("101^")
        bad_value = replace_segment(
            monitor("N-4", accept="", app=""),
            "OBX|6|",
            obx(6, "NM", "151562^MDC_RESP_RATE^MDC", "1.3.1.1", "1,9", "/min"),
        )
        ack = client.exchange(bad_value)
        assert ack.code == "AE" and ack.err is not None
        assert ack.err[2] == "OBX^6^5^1" and ack.err[3].startswith("102^")
        # resending the same bad message gets the same answer, from the journal
        again = client.exchange(bad_value)
        assert (again.code, again.err[2]) == ("AE", "OBX^6^5^1")  # type: ignore[index]
        # enhanced mode, both acks, bad content: CA once journaled, then AE with ERR
        client.send(
            replace_segment(
                monitor("N-7", accept="AL", app="AL"),
                "OBX|5|",
                obx(
                    5,
                    "NM",
                    "150456^MDC_PULS_OXIM_SAT_O2^MDC",
                    "1.2.1.1",
                    "97",
                    "999^MDC_DIM_FURLONG^MDC",
                ),
            )
        )
        commit, application = client.receive(), client.receive()
        assert (commit.code, commit.err, commit.control_id) == ("CA", None, "N-7")
        assert (application.code, application.control_id) == ("AE", "N-7")
        assert application.err is not None and application.err[2] == "OBX^5^6^1^1"
        assert application.err[3].startswith("103^")
        # errors only (MSH-16 ER): a good message gets no application ack
        client.send(monitor("N-5", accept="NE", app="ER"))
        ack = client.exchange(monitor("N-6"))
        assert ack.control_id == "N-6"
    finally:
        client.close()


def test_repeated_control_id_is_acknowledged_and_stored_once(
    gateway: Gateway, platform: Platform, store: StoreContext
) -> None:
    client, other = gateway.client(), gateway.client()
    try:
        assert client.exchange(monitor("DUP-1")).code == "AA"
        assert other.exchange(monitor("DUP-1")).code == "AA"
        assert client.exchange(monitor("DUP-1")).code == "AA"
        # the same MSH-10 from another sender is another message
        other_sender = monitor("DUP-1", eui="0012A1FFFE0000FF")
        assert other.exchange(other_sender).code == "AA"
        # two copies in flight at once
        client.send(monitor("DUP-2"))
        other.send(monitor("DUP-2"))
        assert client.receive().code == "AA" and other.receive().code == "AA"
    finally:
        client.close()
        other.close()
    assert len(observations(store)) == 8 * 3
    counts = open_journal(platform).counts()
    assert counts == {"stored": 3}


def test_character_sets_never_hang(gateway: Gateway, store: StoreContext) -> None:
    client = gateway.client()
    try:
        latin = monitor("CS-1", charset="8859/1", family="LEFÈVRE", given="Hélène")
        ack = client.exchange(latin.encode("latin-1"), encoding="latin-1")
        assert ack.code == "AA"
        utf8 = monitor(
            "CS-2", charset="UNICODE UTF-8", family="NGUYỄN", given="Thị", ipp="0000000008"
        )
        assert client.exchange(utf8).code == "AA"
        # MSH-18 empty (ASCII) with a Latin-1 byte: a NAK naming MSH-18, at once
        undeclared = monitor("CS-3", charset="", family="MÜLLER", ipp="0000000009")
        client.send(undeclared.encode("latin-1"))
        ack = client.receive(encoding="latin-1")
        assert ack.code == "CR" and ack.err is not None and ack.err[2] == "MSH^1^18^1"
        # bytes that are not UTF-8 under MSH-18 UTF-8
        broken = monitor("CS-4", ipp="0000000010").encode().replace(b"MARTIN", b"MART\xffIN")
        ack = client.exchange(broken)
        assert ack.code == "CR" and ack.err is not None and ack.err[2] == "MSH^1^18^1"
        assert client.exchange(monitor("CS-5")).code == "AA"  # the connection still works
    finally:
        client.close()
    names = {
        (p["name"][0]["family"], p["name"][0]["given"][0])
        for p in (
            m.resource for m in store.repository.search("Patient", [("_count", "10")]).matches
        )
    }
    assert names == {("LEFÈVRE", "Hélène"), ("NGUYỄN", "Thị")}


def test_framing_garbage_large_frames_and_split_packets(gateway: Gateway) -> None:
    sock = socket.create_connection(("127.0.0.1", gateway.port), timeout=20)
    try:
        client = MllpClient.__new__(MllpClient)
        client.sock, client.buffer = sock, b""
        # noise before the start block is skipped
        sock.sendall(b"noise\r\n" + START + monitor("FR-1").encode() + END)
        assert client.receive().code == "AA"
        # a message cut into small packets
        data = START + monitor("FR-2").encode() + END
        for i in range(0, len(data), 7):
            sock.sendall(data[i : i + 7])
        assert client.receive().code == "AA"
        # larger than the limit (1 MiB): refused, and the connection stays usable
        huge = monitor("FR-3") + "\rNTE|1||" + "x" * (1024 * 1024 + 10)
        sock.sendall(START + huge.encode() + END)
        ack = client.receive()
        assert ack.code == "CR" and ack.control_id == "FR-3"
        assert client.exchange(monitor("FR-4")).code == "AA"
        # not HL7 at all
        client.send(b"hello")
        ack = client.receive()
        assert ack.code == "AR" and ack.err is not None
    finally:
        sock.close()
