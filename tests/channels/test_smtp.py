"""E-mail against aiosmtpd on loopback: STARTTLS, text and HTML parts, answer links,
an unreachable server, a refused recipient."""

from __future__ import annotations

import email
import email.policy
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from hygie.app import create_app
from hygie.channels import Channel, OutboundMessage, Status
from hygie.channels.answers import AnswerLinks
from hygie.channels.peers import run_mail_sink, self_signed_certificate
from hygie.channels.service import Channels
from hygie.channels.worker import Dispatcher
from hygie.platform import Platform


def mail(key: str, to: str = "dr.martin@chu-exemple.fr", **kw: object) -> OutboundMessage:
    # An owner no service of the app claims: the app built below starts every service,
    # and the mobilization service would take "mobilization:" answers for itself.
    return OutboundMessage(idempotency_key=key, owner="drill:plan-blanc",
                           channel=Channel.EMAIL, recipient=to,
                           subject="Plan blanc : êtes-vous disponible ?",
                           text="Le plan blanc est déclenché.\n\nPouvez-vous venir ?",
                           **kw)  # type: ignore[arg-type]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def dispatcher(ch: Channels) -> Dispatcher:
    from hygie.channels.smtp import SmtpSender

    return Dispatcher(ch, {Channel.EMAIL: SmtpSender(ch.settings)})


def test_starttls_parts_and_answer_link(platform: Platform, tmp_path: Path,
                                        make_channels: Callable[..., Channels]) -> None:
    cert, key = self_signed_certificate(tmp_path / "tls")
    with run_mail_sink(tmp_path / "mail", tls=(cert, key)) as sink:
        ch = make_channels(platform, smtp_port=sink.port, smtp_starttls="require",
                           smtp_ca_file=str(cert), smtp_host="localhost")
        asked = ch.enqueue(mail("m1", expected_answers=["Je viens", "Je ne peux pas"]))
        plain = ch.enqueue(mail("m2", to="cadre@chu-exemple.fr"))
        dispatcher(ch).drain(timeout_s=20)
        assert ch.get(asked.id).status is Status.SUBMITTED
        assert ch.get(plain.id).status is Status.SUBMITTED
        index = sink.messages()
        assert len(index) == 2 and all(m["tls"] for m in index)
        first = next(m for m in index if m["to"] == ["dr.martin@chu-exemple.fr"])
        assert first["message_id"] == f"<{asked.id}@hygie.channels>"
        raw = (sink.directory / first["file"]).read_bytes()
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg.get_content_type() == "multipart/alternative"
    text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "Pouvez-vous venir ?" in text and "<p>Pouvez-vous venir ?</p>" in html
    link = next(w for w in text.split() if "/channels/r/" in w)
    assert link in html
    token = link.rsplit("/", 1)[1]

    answers = []
    ch.register_handler("drill:", answers.append)
    app = create_app(platform=platform)
    with TestClient(app, base_url="http://testserver") as client:
        page = client.get(f"/channels/r/{token}")
        assert page.status_code == 200 and "Je ne peux pas" in page.text
        assert ch.get(asked.id).status is Status.SUBMITTED  # opening records nothing
        bad = client.post(f"/channels/r/{token}", data={"value": "Peut-être"})
        assert bad.status_code == 422
        done = client.post(f"/channels/r/{token}", data={"value": "Je viens"})
        assert done.status_code == 200 and "votre réponse est enregistrée" in done.text
        again = client.post(f"/channels/r/{token}", data={"value": "Je ne peux pas"})
        assert "déjà été enregistrée" in again.text
        tampered = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
        assert client.get(f"/channels/r/{tampered}").status_code == 404
        expired = AnswerLinks(platform.engine, "http://testserver", 60).token(
            asked.id, now=time.time() - 3600)
        assert client.get(f"/channels/r/{expired}").status_code == 410
        no_answer = ch.answer_url(plain.id).rsplit("/", 1)[1]
        assert client.get(f"/channels/r/{no_answer}").status_code == 404
    record = ch.get(asked.id)
    assert record.status is Status.ANSWERED and record.answer == "Je viens"
    assert ch.inbox.deliver_pending() == 1
    assert [a.value for a in answers] == ["Je viens"]


def test_unreachable_server_then_recovery(sqlite_platform: Platform, tmp_path: Path,
                                          make_channels: Callable[..., Channels]) -> None:
    port = free_port()  # nothing listens there yet
    ch = make_channels(sqlite_platform, smtp_port=port, smtp_timeout_s=2, max_attempts=2)
    record = ch.enqueue(mail("m1"))
    d = dispatcher(ch)
    d.drain(timeout_s=2, until=lambda: False)  # several tries, every retry_base_s
    queued = ch.get(record.id)
    # An outage is not the message's fault: it stays queued and spends no try.
    assert queued.status is Status.QUEUED and queued.attempts == 0
    assert "unreachable" in (queued.error or "")
    with run_mail_sink(tmp_path / "mail", port=port) as sink:
        d.drain(timeout_s=10, until=lambda: ch.get(record.id).status is Status.SUBMITTED)
        assert ch.get(record.id).status is Status.SUBMITTED
        assert len(sink.messages()) == 1


def test_refused_recipient_and_no_tls_required(sqlite_platform: Platform, tmp_path: Path,
                                               make_channels: Callable[..., Channels]) -> None:
    with run_mail_sink(tmp_path / "mail", refuse_domain="ferme.example") as sink:
        ch = make_channels(sqlite_platform, smtp_port=sink.port)
        refused = ch.enqueue(mail("m1", to="personne@ferme.example"))
        ok = ch.enqueue(mail("m2"))
        dispatcher(ch).drain(timeout_s=10)
        assert ch.get(refused.id).status is Status.FAILED
        assert "550" in (ch.get(refused.id).error or "")
        assert ch.get(ok.id).status is Status.SUBMITTED
        assert [m["tls"] for m in sink.messages()] == [False]  # none offered: sent in clear
        strict = make_channels(sqlite_platform, smtp_port=sink.port, smtp_starttls="require")
        third = strict.enqueue(mail("m3"))
        dispatcher(strict).drain(timeout_s=10)
        assert strict.get(third.id).status is Status.FAILED
        assert "STARTTLS" in (strict.get(third.id).error or "")


@pytest.mark.parametrize("path", ["/channels/r/x", "/channels/r/a.b.c"])
def test_garbage_tokens_are_404(sqlite_platform: Platform, path: str) -> None:
    with TestClient(create_app(platform=sqlite_platform)) as client:
        assert client.get(path).status_code == 404
