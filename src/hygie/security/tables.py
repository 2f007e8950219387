"""The security package's own tables: OAuth clients and platform user accounts.

They are operational data that FHIR does not model (secrets, password hashes), so they
live here, declared with SQLAlchemy Core on the shared ``metadata`` so that the one
migration history covers them. Secrets are only ever stored as Argon2id hashes. Scopes
and roles are space-separated words, the form OAuth itself uses (RFC 6749 §3.3). Times
are integers, microseconds since the Unix epoch, UTC, as in the store's tables.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, String, Table, Text

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
)
