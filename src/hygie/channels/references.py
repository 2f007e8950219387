"""Identifiers of messages and of what travels for them.

The outbox id is a random 128-bit hex string. The SMPP references of a message's parts
are derived from it rather than stored, so that a dispatcher taking over after a crash
computes the ones its predecessor used: the 8-bit concatenation reference shared by the
parts (3GPP TS 23.040 §9.2.3.24.1) and each part's 16-bit ``user_message_reference``
(SMPP v3.4 §5.3.2.17), which settles parts left in doubt.
"""

from __future__ import annotations

import uuid


def new_id() -> str:
    return uuid.uuid4().hex


def user_ref(message_id: str, part: int) -> int:
    """The 16-bit user_message_reference of one part: from the id, so a retry after a
    crash computes the same one without having stored it."""
    return (int(message_id[:4], 16) + part - 1) & 0xFFFF


def concat_ref(message_id: str) -> int:
    """The 8-bit concatenation reference shared by the parts of one message."""
    return int(message_id[4:6], 16)
