"""ROBERT time: NTP seconds and 15-minute epochs counted from the service start.

ROBERT v1.1, section 2: time is exchanged as NTP seconds (since 1900-01-01 UTC); an
epoch lasts 900 s and epochs are numbered from the service's start time
(2020-06-01T00:00:00Z for the French deployment). A "day" here is 96 consecutive
epochs from that start; the server key used for EBIDs changes every day.
"""

from __future__ import annotations

from datetime import UTC, datetime

#: Seconds between the NTP era (1900-01-01) and the Unix epoch (1970-01-01).
NTP_UNIX_OFFSET = 2_208_988_800
EPOCH_SECONDS = 900
EPOCHS_PER_DAY = 86_400 // EPOCH_SECONDS
SERVICE_START_UNIX = int(datetime(2020, 6, 1, tzinfo=UTC).timestamp())
SERVICE_START_NTP = SERVICE_START_UNIX + NTP_UNIX_OFFSET


def ntp_from_unix(unix_seconds: float) -> int:
    return int(unix_seconds) + NTP_UNIX_OFFSET


def unix_from_ntp(ntp_seconds: int) -> int:
    return ntp_seconds - NTP_UNIX_OFFSET


def epoch_of_ntp(ntp_seconds: int) -> int:
    """Epoch number containing this NTP time."""
    return (ntp_seconds - SERVICE_START_NTP) // EPOCH_SECONDS


def epoch_of_unix(unix_seconds: float) -> int:
    return epoch_of_ntp(ntp_from_unix(unix_seconds))


def epoch_start_ntp(epoch: int) -> int:
    return SERVICE_START_NTP + epoch * EPOCH_SECONDS


def day_of_epoch(epoch: int) -> int:
    """Day number (from the service start) of an epoch: which daily server key applies."""
    return epoch // EPOCHS_PER_DAY


def datetime_of_epoch(epoch: int) -> datetime:
    return datetime.fromtimestamp(SERVICE_START_UNIX + epoch * EPOCH_SECONDS, UTC)
