"""Identities, tokens, scopes and access rules.

What other packages may use; the modules behind these names are free to change.
"""

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
    "AuthMiddleware",
    "ExpiredToken",
    "FileKeyStore",
    "InsufficientScope",
    "InvalidToken",
    "KeyStore",
    "Kind",
    "Principal",
    "ResourceScope",
    "ScopeError",
    "ScopeSet",
    "TokenService",
    "issue_service_token",
    "tokens_for",
]
