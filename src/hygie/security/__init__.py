"""Identities, tokens, scopes and access rules."""
