"""Identities, tokens, scopes and access rules.

What other packages may use; the modules behind these names are free to change.
"""

from hygie.security.access import AccessDenied, AccessRules
from hygie.security.audit import AuditChain, AuditWriter, VerifyReport, verify
from hygie.security.encryption import BodyVault, LocalMasterKey, MasterKey, SealError, vault_for
from hygie.security.installation import SecurityParts, install
from hygie.security.keys import FileKeyStore, KeyStore
from hygie.security.middleware import AuthMiddleware
from hygie.security.model import InsufficientScope, Kind, Principal
from hygie.security.scopes import ResourceScope, ScopeError, ScopeSet
from hygie.security.tokens import (
    ExpiredToken,
    InvalidToken,
    TokenService,
    issue_service_token,
    tokens_for,
)

__all__ = [
    "AccessDenied",
    "AccessRules",
    "AuditChain",
    "AuditWriter",
    "AuthMiddleware",
    "BodyVault",
    "ExpiredToken",
    "FileKeyStore",
    "InsufficientScope",
    "InvalidToken",
    "KeyStore",
    "Kind",
    "LocalMasterKey",
    "MasterKey",
    "Principal",
    "ResourceScope",
    "ScopeError",
    "ScopeSet",
    "SealError",
    "SecurityParts",
    "TokenService",
    "VerifyReport",
    "install",
    "issue_service_token",
    "tokens_for",
    "vault_for",
    "verify",
]
