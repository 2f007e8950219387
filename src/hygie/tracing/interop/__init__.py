"""Exposure-notification cryptography of the protocols ROBERT had to interoperate with.

``gaen``: Google/Apple Exposure Notification (TEK, RPIK, RPI, AEMK, AEM).
``dp3t``: DP-3T low-cost design (day keys and EphIDs).
Both are built on ``cryptography`` primitives; only the protocol glue is written here.
"""

from hygie.tracing.interop.dp3t import ephids, next_day_key
from hygie.tracing.interop.gaen import (
    aem_key,
    decrypt_metadata,
    encrypt_metadata,
    interval_number,
    rolling_proximity_identifier,
    rpi_key,
    rpis_for_day,
)

__all__ = [
    "aem_key",
    "decrypt_metadata",
    "encrypt_metadata",
    "ephids",
    "interval_number",
    "next_day_key",
    "rolling_proximity_identifier",
    "rpi_key",
    "rpis_for_day",
]
