"""Plugs the security layer into a platform: one call, before the store is opened.

``install(platform)`` puts in ``platform.parts`` the store's body codec (encryption at
rest), access policy and audit sink (names in ``hygie.store.access.PARTS``), the audit
writer that logins and other events also use, and the token revocation check. It does
no database work: keys and tables are first touched when used, so that ``hygie
migrate`` can run on an empty database with the layer installed.
"""

from __future__ import annotations

from dataclasses import dataclass

from hygie.platform import Platform
from hygie.security.access import AccessRules
from hygie.security.audit import AuditChain, AuditWriter
from hygie.security.audit_sink import FhirAudit
from hygie.security.encryption import BodyVault, MasterKey, load_master_key
from hygie.store.access import PARTS


@dataclass(frozen=True)
class SecurityParts:
    """What ``install`` put in place, for code that needs it directly."""

    master_key: MasterKey
    access: AccessRules
    audit_chain: AuditChain
    audit_writer: AuditWriter
    vault: BodyVault | None


def install(platform: Platform) -> SecurityParts:
    """Install the security layer on ``platform`` (once; later calls return it)."""
    installed: SecurityParts | None = platform.parts.get("security")
    if installed is not None:
        return installed
    settings = platform.settings
    master: MasterKey = platform.parts.get("security.master_key") or load_master_key(settings)
    vault = BodyVault(platform.engine, master) if settings.encrypt_at_rest else None
    access = AccessRules(platform.engine)
    chain = AuditChain(platform.engine, master.derive("hygie audit chain"),
                       settings.var_dir / "audit" / "head")
    writer = AuditWriter(chain)
    parts = SecurityParts(master, access, chain, writer, vault)
    platform.parts["security"] = parts
    platform.parts["security.master_key"] = master
    if vault is not None:
        platform.parts[PARTS["codec"]] = vault
    platform.parts[PARTS["access"]] = access
    if settings.audit:
        platform.parts[PARTS["audit"]] = FhirAudit(writer, access.is_emergency)
    platform.closers.append(writer.close)
    from hygie.security.grants import install_revocation_check

    install_revocation_check(platform)
    return parts


def security_of(platform: Platform) -> SecurityParts:
    """The installed security layer (installing it when needed)."""
    return install(platform)
