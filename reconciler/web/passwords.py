"""Portal passwords: argon2id (argon2-cffi's RFC 9106 low-memory profile), set only by the
person through an invitation link; git never holds one.

``verify`` costs the same whether or not the account exists: an unknown email is checked
against a dummy hash, so response time does not reveal who has an account.

``PasswordChecker`` runs it on threads of its own (argon2 takes tens of milliseconds of CPU:
on the portal's database threads a burst of logins would stall every page), with a bounded
queue: beyond it a login is refused at once (``Busy``) instead of waiting.
"""

from __future__ import annotations

import asyncio
import functools
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from reconciler.web.errors import BadRequest, Busy

MIN_LENGTH = 12
MAX_LENGTH = 256  # argon2 hashes anything, but a megabyte "password" is a denial of service

_HASHER = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """What an unknown account is verified against. Made once, when first needed (a portal
    warms it at start), not at import: every CLI command imports this module and one argon2
    hash costs about 0.1 s."""
    return _HASHER.hash("this is not anyone's password")


@dataclass(frozen=True, slots=True)
class Verified:
    ok: bool
    rehash: str | None = None  # a stronger hash to store, when the parameters were raised


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify(stored_hash: str | None, password: str) -> Verified:
    """Check ``password``; ``stored_hash`` None (no account) still spends one verification."""
    target = stored_hash or _dummy_hash()
    try:
        _HASHER.verify(target, password[:MAX_LENGTH])
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return Verified(False)
    if stored_hash is None:
        return Verified(False)
    rehash = _HASHER.hash(password) if _HASHER.check_needs_rehash(stored_hash) else None
    return Verified(True, rehash)


class PasswordChecker:
    """``verify`` on ``threads`` dedicated threads, at most ``queue`` more waiting."""

    def __init__(self, threads: int, queue: int) -> None:
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="pbx-portal-argon2")
        self._executor.submit(
            _dummy_hash
        )  # warm, off the loop: the first unknown login costs the same
        self._capacity = threads + queue
        self._in_flight = 0  # touched only on the event loop

    async def verify(self, stored_hash: str | None, password: str) -> Verified:
        """Raises ``Busy`` when ``threads + queue`` checks are already running or waiting."""
        if self._in_flight >= self._capacity:
            raise Busy()
        self._in_flight += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, verify, stored_hash, password)
        finally:
            self._in_flight -= 1

    async def hash(self, password: str) -> str:
        """A new password's argon2id hash, on the same bounded threads as ``verify``."""
        if self._in_flight >= self._capacity:
            raise Busy()
        self._in_flight += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, hash_password, password)
        finally:
            self._in_flight -= 1

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def check_new_password(password: str, confirmation: str, email: str) -> None:
    """The few rules worth enforcing (NIST 800-63B): length, not the email, typed twice."""
    if password != confirmation:
        raise BadRequest("the two passwords differ")
    if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        raise BadRequest(f"a password has {MIN_LENGTH} to {MAX_LENGTH} characters")
    if password.strip().lower() in (email.lower(), email.split("@")[0].lower()):
        raise BadRequest("a password must not be your email address")
