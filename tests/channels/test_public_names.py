"""The public surface of hygie.channels: what other packages may import."""

from __future__ import annotations

import hygie.channels as channels


def test_all_is_sorted_and_importable() -> None:
    assert channels.__all__ == sorted(channels.__all__)
    for name in channels.__all__:
        assert getattr(channels, name) is not None


def test_seam_contracts() -> None:
    from hygie.channels.smpp import SmppSender
    from hygie.channels.smtp import SmtpSender

    assert issubclass(SmtpSender, channels.BatchSender)
    assert issubclass(SmppSender, channels.BatchSender)
    assert {str(s) for s in channels.Status} >= {"queued", "submitted", "delivered", "failed",
                                                 "answered"}
