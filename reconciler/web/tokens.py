"""Random bearer secrets (session ids, CSRF tokens, invitation and API tokens) and how they
are kept: only a SHA-256 digest reaches the database, so a copy of it opens nothing.

256 random bits make a fast hash sufficient (no dictionary to attack); comparisons of
secrets the client sends are constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

TOKEN_BYTES = 32
API_TOKEN_PREFIX = "pbxp_"  # noqa: S105 (a prefix, recognisable in a leaked-secret scan)


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def new_api_token() -> str:
    return API_TOKEN_PREFIX + new_token()


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def same_secret(given: str | None, expected: str) -> bool:
    """Constant-time equality; a missing value is never equal."""
    if given is None:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())
