"""Portal passwords: argon2id (argon2-cffi's RFC 9106 low-memory profile), set only by the
person through an invitation link; git never holds one.

``verify`` costs the same whether or not the account exists: an unknown email is checked
against a dummy hash, so response time does not reveal who has an account.
"""

from __future__ import annotations

from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from reconciler.web.errors import BadRequest

MIN_LENGTH = 12
MAX_LENGTH = 256  # argon2 hashes anything, but a megabyte "password" is a denial of service

_HASHER = PasswordHasher()
_DUMMY_HASH = _HASHER.hash("this is not anyone's password")


@dataclass(frozen=True, slots=True)
class Verified:
    ok: bool
    rehash: str | None = None  # a stronger hash to store, when the parameters were raised


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify(stored_hash: str | None, password: str) -> Verified:
    """Check ``password``; ``stored_hash`` None (no account) still spends one verification."""
    target = stored_hash or _DUMMY_HASH
    try:
        _HASHER.verify(target, password[:MAX_LENGTH])
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return Verified(False)
    if stored_hash is None:
        return Verified(False)
    rehash = _HASHER.hash(password) if _HASHER.check_needs_rehash(stored_hash) else None
    return Verified(True, rehash)


def check_new_password(password: str, confirmation: str, email: str) -> None:
    """The few rules worth enforcing (NIST 800-63B): length, not the email, typed twice."""
    if password != confirmation:
        raise BadRequest("the two passwords differ")
    if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        raise BadRequest(f"a password has {MIN_LENGTH} to {MAX_LENGTH} characters")
    if password.strip().lower() in (email.lower(), email.split("@")[0].lower()):
        raise BadRequest("a password must not be your email address")
