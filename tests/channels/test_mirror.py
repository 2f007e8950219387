"""The outbox mirrored as FHIR CommunicationRequest / Communication in the store."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from hygie.channels import Channel, OutboundMessage, Receipt, Status
from hygie.channels.mirror import IDENTIFIER_SYSTEM, mirror_pass
from hygie.channels.model import PartOutcome
from hygie.channels.service import Channels
from hygie.platform import Platform
from hygie.store.outcomes import ResourceNotFound
from hygie.store.server import open_store


def test_statuses_become_fhir_resources(platform: Platform,
                                        make_channels: Callable[..., Channels]) -> None:
    repo = open_store(platform).repository
    patient = repo.create({"resourceType": "Patient", "name": [{"family": "Durand"}]}).stored
    ch = make_channels(platform)
    asked = ch.enqueue(OutboundMessage(
        "q1", "followup:1", Channel.SMS, "+33612345678", "Avez-vous de la fièvre ?",
        expected_answers=["OUI", "NON"], about=f"Patient/{patient.res_id}",
        recipient_ref=f"Patient/{patient.res_id}"))
    failed = ch.enqueue(OutboundMessage("q2", "followup:1", Channel.SMS, "+33612345679", "x"))
    assert mirror_pass(platform.engine, repo) == 2
    request = repo.read("CommunicationRequest", asked.id).resource
    assert request["status"] == "active"
    assert request["subject"]["reference"] == f"Patient/{patient.res_id}"
    assert request["identifier"][0] == {"system": IDENTIFIER_SYSTEM, "value": asked.id}
    assert request["payload"][0]["contentString"] == "Avez-vous de la fièvre ?"
    assert mirror_pass(platform.engine, repo) == 0  # nothing changed since

    envs = {e.message_id: e for e in ch.outbox.claim(Channel.SMS, "w", 5)}
    ch.outbox.record([
        (envs[asked.id], Receipt(Status.SUBMITTED, parts=(PartOutcome(1, "accepted", "a"),))),
        (envs[failed.id], Receipt(Status.SUBMITTED,
                                  parts=(PartOutcome(1, "rejected", error="0x0B"),))),
    ])
    ch.inbox.receive_sms([("+33612345678", "non")])
    assert mirror_pass(platform.engine, repo) == 2
    com = repo.read("Communication", asked.id).resource
    assert com["status"] == "completed" and com["sent"].endswith("+00:00")
    assert com["basedOn"] == [{"reference": f"CommunicationRequest/{asked.id}"}]
    assert repo.read("CommunicationRequest", asked.id).resource["status"] == "completed"
    reply = repo.read("Communication", f"{asked.id}-r").resource
    assert reply["inResponseTo"] == [{"reference": f"Communication/{asked.id}"}]
    assert reply["payload"][0]["contentString"] == "NON"
    assert reply["sender"]["reference"] == f"Patient/{patient.res_id}"
    revoked = repo.read("CommunicationRequest", failed.id).resource
    assert revoked["status"] == "revoked" and "0x0B" in revoked["statusReason"]["text"]
    with pytest.raises(ResourceNotFound):  # refused by the SMSC: never sent
        repo.read("Communication", failed.id)
    page = repo.search("Communication", [("identifier", f"{IDENTIFIER_SYSTEM}|{asked.id}")])
    assert [m.resource["id"] for m in page.matches] == [asked.id]
