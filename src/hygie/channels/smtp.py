"""E-mail over SMTP (RFC 5321), with STARTTLS (RFC 3207) whenever the server offers it.

Each message has a plain-text part and an HTML part (``multipart/alternative``); a
message awaiting an answer carries its signed answer link in both. The ``Message-ID``
comes from the outbox id, so that a copy sent again after a crash (the one case the
outbox cannot rule out for SMTP: accepted by the server, crash before the commit)
carries the same id and can be dropped by the receiving side. stdlib ``smtplib`` and
``email`` do the protocol and the MIME.

There is no delivery receipt for e-mail here: ``submitted`` means the server took it.
"""

from __future__ import annotations

import html
import smtplib
import socket
import ssl
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formatdate

from hygie.channels.model import Envelope, Receipt, Status
from hygie.channels.settings import ChannelSettings

_HTML = """<!doctype html>
<html lang="fr"><body style="font-family:sans-serif;max-width:36em">
{body}
{answer}
<p style="color:#666;font-size:small">Message envoyé par la plateforme Hygie.</p>
</body></html>"""


def _html_body(text: str) -> str:
    return "".join(f"<p>{html.escape(p).replace(chr(10), '<br>')}</p>"
                   for p in text.split("\n\n"))


def build_email(envelope: Envelope, sender: str) -> EmailMessage:
    """The MIME message of an envelope (text and HTML parts)."""
    m = envelope.message
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = m.recipient
    msg["Subject"] = m.subject or ""
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = f"<{envelope.message_id}@hygie.channels>"
    msg["Auto-Submitted"] = "auto-generated"
    text = m.text
    answer_html = ""
    if envelope.answer_url:
        options = list(m.expected_answers or [])
        text += "\n\nPour répondre : " + envelope.answer_url
        if options:
            text += "\n(réponses possibles : " + ", ".join(options) + ")"
        answer_html = (f'<p><a href="{html.escape(envelope.answer_url)}" '
                       'style="display:inline-block;padding:.6em 1.2em;background:#1d4e89;'
                       'color:#fff;text-decoration:none;border-radius:4px">Répondre</a></p>')
    msg.set_content(text)
    body = m.html if m.html else _html_body(m.text)
    msg.add_alternative(_HTML.format(body=body, answer=answer_html), subtype="html")
    return msg


class SmtpSender:
    """The e-mail transport; ``send_many`` keeps one SMTP connection for a batch."""

    def __init__(self, settings: ChannelSettings) -> None:
        self.settings = settings

    def _tls_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.settings.smtp_ca_file or None)

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        conn = smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout_s,
                            local_hostname="hygie.localhost")
        try:
            conn.ehlo()
            if s.smtp_starttls != "never" and conn.has_extn("starttls"):
                conn.starttls(context=self._tls_context())
                conn.ehlo()
            elif s.smtp_starttls == "require":
                raise smtplib.SMTPNotSupportedError("the server offers no STARTTLS")
            if s.smtp_username:
                conn.login(s.smtp_username, s.smtp_password)
        except BaseException:
            conn.close()
            raise
        return conn

    def send(self, envelope: Envelope) -> Receipt:
        return self.send_many([envelope])[0]

    def send_many(self, envelopes: Sequence[Envelope]) -> list[Receipt]:
        try:
            conn = self._connect()
        except (OSError, smtplib.SMTPException) as exc:
            return [_failure(exc) for _ in envelopes]
        receipts: list[Receipt] = []
        try:
            for i, env in enumerate(envelopes):
                try:
                    refused = conn.send_message(build_email(env, self.settings.smtp_from))
                except smtplib.SMTPServerDisconnected as exc:
                    receipts.append(_failure(exc))
                    receipts += [Receipt(Status.QUEUED, error="connection closed",
                                         peer_down=True) for _ in envelopes[i + 1:]]
                    return receipts
                except (OSError, smtplib.SMTPException) as exc:
                    receipts.append(_failure(exc))
                    continue
                if refused:
                    code, reason = next(iter(refused.values()))
                    why = reason.decode("utf-8", "replace")
                    receipts.append(Receipt(Status.FAILED, error=f"{code} {why}"[:300]))
                else:
                    receipts.append(Receipt(Status.SUBMITTED,
                                            provider_ref=f"{env.message_id}@hygie.channels",
                                            detail="accepted by the mail server"))
        finally:
            try:
                conn.quit()
            except (OSError, smtplib.SMTPException):
                conn.close()
        return receipts


def _failure(exc: BaseException) -> Receipt:
    """4xx and network failures are retried; 5xx and refusals are final."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        code, reason = next(iter(exc.recipients.values()))
        status = Status.QUEUED if 400 <= code < 500 else Status.FAILED
        return Receipt(status, error=f"{code} {reason.decode('utf-8', 'replace')}"[:300],
                       retry_after_s=None)
    if isinstance(exc, smtplib.SMTPResponseException):
        status = Status.QUEUED if 400 <= exc.smtp_code < 500 else Status.FAILED
        msg = exc.smtp_error.decode("utf-8", "replace") if isinstance(
            exc.smtp_error, bytes) else str(exc.smtp_error)
        return Receipt(status, error=f"{exc.smtp_code} {msg}"[:300])
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return Receipt(Status.FAILED, error=str(exc))
    if isinstance(exc, (OSError, socket.timeout, smtplib.SMTPException)):
        return Receipt(Status.QUEUED, error=f"mail server unreachable ({type(exc).__name__})",
                       peer_down=True)
    return Receipt(Status.FAILED, error=type(exc).__name__)
