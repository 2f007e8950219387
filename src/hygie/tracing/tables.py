"""Tables of the tracing service (SQLAlchemy Core, in the platform's shared metadata).

What ROBERT's server stores, and nothing more (ROBERT v1.1, section 3, "IDTable"):

- ``tracing_registration``: one row per app: id_A, K_A and K_A_enc (wrapped by the key
  store), SRE (epoch of the last status request), UN (user notified) and its epoch,
  and LEE (list of exposed epochs, each with its contacts' scores, never *who*),
  plus the time of the last authenticated request, which makes replays detectable.
- ``tracing_contact``: the queue of reported contacts (EBID, ECC, HELLOs), deleted as
  soon as a processing pass has read them; no contact graph is kept.
- ``tracing_submission_code``: hashes of single-use codes given by health professionals.
- ``tracing_captcha``: pending challenges, deleted when answered or expired.
- ``tracing_test_site``: test sites (public data).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
)

from hygie.store.schema import metadata

_pk_int = BigInteger().with_variant(Integer, "sqlite")

registration = Table(
    "tracing_registration",
    metadata,
    Column("id_a", BigInteger, primary_key=True, autoincrement=False),
    Column("ka", LargeBinary, nullable=False),
    Column("kenc", LargeBinary, nullable=False),
    #: SRE: epoch of the last accepted status request (-1: none yet).
    Column("last_status_epoch", Integer, nullable=False, default=-1),
    #: NTP time of the last authenticated request (status, delete history): anti-replay.
    Column("last_request_time", BigInteger, nullable=False, default=0),
    #: UN: the user was told they are at risk, and the epoch when.
    Column("notified", Boolean, nullable=False, default=False),
    Column("notification_epoch", Integer, nullable=False, default=-1),
    #: LEE: JSON object {epoch: [score, ...]}, epochs within the contagious period only.
    Column("exposed_epochs", Text, nullable=False, default="{}"),
)

contact = Table(
    "tracing_contact",
    metadata,
    Column("pk", _pk_int, primary_key=True, autoincrement=True),
    #: EBID (8 bytes) || ECC (1) || HELLOs (12 bytes each: time_rx, time16, MAC, RSSI).
    Column("body", LargeBinary, nullable=False),
)

submission_code = Table(
    "tracing_submission_code",
    metadata,
    Column("code_hash", String(64), primary_key=True),
    Column("kind", String(8), nullable=False),
    Column("expires", BigInteger, nullable=False),
    Column("used", Boolean, nullable=False, default=False),
)

captcha = Table(
    "tracing_captcha",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("kind", String(8), nullable=False),
    Column("answer", String(16), nullable=False),
    Column("expires", BigInteger, nullable=False),
    Index(None, "expires"),
)

test_site = Table(
    "tracing_test_site",
    metadata,
    Column("pk", _pk_int, primary_key=True, autoincrement=True),
    Column("rs", String(255), nullable=False),
    Column("adresse", String(512), nullable=False, default=""),
    Column("latitude", Float, nullable=False),
    Column("longitude", Float, nullable=False),
    Column("mod_prel", String(255), nullable=False, default=""),
    Column("public", String(255), nullable=False, default=""),
    Column("horaire", Text, nullable=False, default=""),
    Column("check_rdv", String(32), nullable=False, default=""),
    Column("tel_rdv", String(64), nullable=False, default=""),
    Column("web_rdv", String(512), nullable=False, default=""),
    Column("do_prel", Boolean, nullable=False, default=False),
    Column("do_antigenic", Boolean, nullable=False, default=False),
)

ALL_TABLES = [registration, contact, submission_code, captcha, test_site]
