"""The security package's own tables: accounts, OAuth grants, access, audit, data keys.

They are operational data that FHIR does not model (secrets, password hashes, grants,
the audit chain, wrapped keys), so they live here, declared with SQLAlchemy Core on the
shared ``metadata`` so that the one migration history covers them. Secrets are only ever
stored as hashes (Argon2id, or SHA-256 for random tokens), TOTP secrets sealed. Scopes
and roles are space-separated words, the form OAuth itself uses (RFC 6749 §3.3). Times
are integers, microseconds since the Unix epoch, UTC, as in the store's tables.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    false,
    text,
)

from hygie.store.schema import metadata

#: OAuth 2.0 confidential clients (RFC 6749 §2): services that get tokens by
#: client credentials.
oauth_client = Table(
    "oauth_client",
    metadata,
    Column("client_id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("secret_hash", String(200), nullable=False),
    #: The scopes the client may request (space-separated, SMART syntax).
    Column("allowed_scopes", Text, nullable=False),
    Column("created", BigInteger, nullable=False),
    Column("disabled", Boolean, nullable=False, default=False),
    #: Where the authorization code grant may send the browser back (space-separated,
    #: compared exactly: RFC 6749 §3.1.2, OAuth 2.0 Security BCP §4.1.3).
    Column("redirect_uris", Text, nullable=False, server_default=""),
    #: A public client (a browser or mobile app) has no secret and must use PKCE.
    Column("public", Boolean, nullable=False, server_default=false()),
)

#: People who sign in to the platform: staff, administrators and patients.
app_user = Table(
    "app_user",
    metadata,
    #: Kept in lower case, so that sign-in does not depend on the case typed.
    Column("username", String(128), primary_key=True),
    Column("password_hash", String(200), nullable=False),
    Column("display", String(200), nullable=False),
    #: practitioner, patient or admin (see hygie.security.model.Kind).
    Column("kind", String(16), nullable=False),
    Column("roles", Text, nullable=False, default=""),
    Column("scopes", Text, nullable=False, default=""),
    #: FHIR reference of the person, e.g. Practitioner/123 or Patient/456.
    Column("fhir_user", String(200), nullable=True),
    #: The establishment of the territory the user works in (an Organization id).
    Column("hospital", String(64), nullable=True),
    Column("created", BigInteger, nullable=False),
    Column("disabled", Boolean, nullable=False, default=False),
    #: TOTP secret (RFC 6238), sealed by the master key; confirmed once a code matched.
    Column("totp_secret", LargeBinary, nullable=True),
    Column("totp_confirmed", Boolean, nullable=False, server_default=false()),
    #: The last TOTP time step accepted, so that a code is never accepted twice.
    Column("totp_last_step", BigInteger, nullable=False, server_default="0"),
)

# --- identities: second factor, throttling, OAuth grants ---------------------------------

#: Failed sign-ins per username (known or not, so that lockout reveals nothing) and the
#: time until which the username is locked.
login_failure = Table(
    "login_failure",
    metadata,
    Column("username", String(128), primary_key=True),
    Column("failures", Integer, nullable=False),
    Column("last_failure", BigInteger, nullable=False),
    Column("locked_until", BigInteger, nullable=False, default=0),
)

#: Authorization codes (RFC 6749 §4.1), single use, kept as SHA-256 hashes.
oauth_code = Table(
    "oauth_code",
    metadata,
    Column("code_hash", String(64), primary_key=True),
    Column("client_id", String(64), nullable=False),
    Column("username", String(128), nullable=False),
    Column("redirect_uri", Text, nullable=False),
    Column("scope", Text, nullable=False),
    #: PKCE (RFC 7636): the S256 challenge the token request must answer.
    Column("code_challenge", String(128), nullable=False),
    Column("nonce", String(255), nullable=True),
    #: The patient chosen at launch (SMART launch/patient).
    Column("patient", String(64), nullable=True),
    Column("expires", BigInteger, nullable=False),
    Column("used", Boolean, nullable=False, default=False),
)

#: Refresh tokens, as SHA-256 hashes; each use replaces the token by a new one of the
#: same family, and presenting a replaced one revokes the whole family (OAuth 2.0
#: Security BCP, refresh token rotation).
oauth_refresh = Table(
    "oauth_refresh",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("family", String(32), nullable=False, index=True),
    Column("client_id", String(64), nullable=False),
    Column("username", String(128), nullable=False),
    Column("scope", Text, nullable=False),
    Column("patient", String(64), nullable=True),
    Column("created", BigInteger, nullable=False),
    Column("expires", BigInteger, nullable=False),
    Column("state", String(16), nullable=False),  # active, used, revoked
)

#: Access tokens revoked before their expiry (RFC 7009), by ``jti``.
revoked_token = Table(
    "revoked_token",
    metadata,
    Column("jti", String(64), primary_key=True),
    Column("expires", BigInteger, nullable=False, index=True),
)

# --- access rules ---------------------------------------------------------------------------

#: Emergency access ("break the glass"): who opened which record, why, until when, and
#: the review that every such access must get.
break_glass = Table(
    "break_glass",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("username", String(128), nullable=False),
    Column("patient_id", String(64), nullable=False),
    Column("reason", Text, nullable=False),
    Column("created", BigInteger, nullable=False),
    Column("expires", BigInteger, nullable=False),
    Column("reviewed_by", String(128), nullable=True),
    Column("reviewed_at", BigInteger, nullable=True),
    Column("review_note", Text, nullable=True),
    Index(None, "username", "patient_id", "expires"),
)

# --- audit ----------------------------------------------------------------------------------

#: The audit trail: one AuditEvent per row, chained by a keyed hash (see audit.py).
#:
#: A FHIR interaction (nearly every row) is kept as the facts its AuditEvent is made of,
#: one column each; the AuditEvent JSON is built from them when the trail is read. Other
#: events (sign-ins, security alerts, exports) keep their whole AuditEvent in ``event``.
audit_log = Table(
    "audit_log",
    metadata,
    #: INTEGER on SQLite: the row id itself, one b-tree fewer per appended record.
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=False),
    #: When the access happened (microseconds since the epoch, UTC).
    Column("recorded", BigInteger, nullable=False),
    #: The interaction (read, search-type, create...) or the kind of event (login...).
    Column("action", String(32), nullable=False),
    Column("outcome", String(8), nullable=False),
    #: The caller's account (a username or a client id); NULL: anonymous.
    Column("agent", String(128), nullable=True),
    #: The whole AuditEvent as canonical JSON bytes (what the hash covers), for events
    #: that are not FHIR interactions; NULL on rows that hold the facts below.
    Column("event", LargeBinary, nullable=True),
    #: AuditEvent.action: C, R, U, D or E.
    Column("verb", String(1), nullable=True),
    #: The caller's FHIR reference (Practitioner/123), client and roles (space-separated).
    Column("who", String(200), nullable=True),
    Column("client", String(64), nullable=True),
    Column("roles", String(200), nullable=True),
    #: The caller's network address.
    Column("address", String(64), nullable=True),
    #: The resources touched (Type/id, space-separated), and the search query if any.
    Column("entity", Text, nullable=True),
    Column("query", Text, nullable=True),
    #: The patient whose record was touched, when there is exactly one (most accesses);
    #: when there are several, they are rows of ``audit_patient``.
    Column("patient", String(64), nullable=True),
    #: AuditEvent.outcomeDesc: why it failed.
    Column("detail", Text, nullable=True),
    #: AuditEvent.purposeOfEvent: BTG for an access that needed an emergency grant.
    Column("purpose", String(8), nullable=True),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Index("ix_audit_log_patient", "patient", "seq",
          sqlite_where=text("patient IS NOT NULL"),
          postgresql_where=text("patient IS NOT NULL")),
)

#: Which patients' records each audit record is about ("who looked at my record").
audit_patient = Table(
    "audit_patient",
    metadata,
    Column("patient_id", String(64), primary_key=True),
    Column("seq", BigInteger, primary_key=True),
)

# --- encryption at rest -------------------------------------------------------------------

#: AES-256 data keys, wrapped by the master key (see encryption.py).
data_key = Table(
    "data_key",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("wrapped", LargeBinary, nullable=False),
    Column("master_key_id", String(64), nullable=False),
    Column("created", BigInteger, nullable=False),
    Column("state", String(16), nullable=False),  # active or retired
)
