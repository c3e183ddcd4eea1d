"""Server-side sessions and API tokens: who is calling, resolved from the session cookie or
an ``Authorization: Bearer`` token.

Lookups are cached in memory for ``session_cache_seconds`` so a page read costs no database
round trip; ending a session or token in this process drops it from the cache at once (other
daemons' caches expire within that delay). Idle and absolute timeouts are checked on every
request.

The idle timeout counts from the last *request*, kept in memory: ``last_seen_at`` is
written back at most once per ``touch_interval`` (a quarter of the idle timeout, at most a
minute), never once per request. When the row says another daemon saw the session later
than this one wrote it, that daemon may hold up to ``touch_interval`` of requests not yet
written: the session then gets that much grace rather than ending early.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from reconciler.store.accounts import (
    SessionRow,
    create_session,
    delete_session,
    end_removed_session,
    read_api_token,
    read_session_or_removal,
    touch_session,
)
from reconciler.web.config import PortalConfig
from reconciler.web.db import PortalDb
from reconciler.web.tokens import API_TOKEN_PREFIX, new_token, token_digest

MAX_TOUCH_INTERVAL = 60.0
MAX_REMOVED_NOTICES = 1024  # bounded: a flood of removed cookies must not grow memory
CACHE_LIMIT = 50_000


@dataclass(frozen=True, slots=True)
class Identity:
    """The caller: a person, through a browser session or one of their API tokens."""

    email: str
    session: SessionRow | None = None
    token_id: int | None = None

    @property
    def csrf_token(self) -> str | None:
        return self.session.csrf_token if self.session else None


@dataclass(slots=True)
class _Cached:
    identity: Identity
    fetched: float  # monotonic
    touched: datetime  # last_seen_at as this process last wrote (or read) it
    last_request: datetime | None = None  # this process's own last request of the session


class Sessions:
    def __init__(
        self,
        db: PortalDb,
        config: PortalConfig,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.db = db
        self.config = config
        self.clock = clock
        self._cache: dict[bytes, _Cached] = {}
        self._removed: dict[bytes, bool] = {}  # looked up just now: ended by a removal
        self.touch_interval = timedelta(seconds=min(MAX_TOUCH_INTERVAL, config.idle_timeout / 4))

    async def create(self, email: str, client_addr: str | None, user_agent: str | None) -> str:
        """A new session for ``email``; returns the cookie value (only its digest is kept)."""
        token = new_token()
        await self.db.run(
            create_session,
            token_hash=token_digest(token),
            email=email,
            csrf_token=new_token(),
            expires_at=self.clock() + timedelta(seconds=self.config.absolute_timeout),
            client_addr=client_addr,
            user_agent=user_agent,
        )
        return token

    async def resolve_cookie(self, token: str) -> Identity | None:
        digest = token_digest(token)
        entry = await self._session_entry(digest)
        if entry is None or entry.identity.session is None:
            return None
        row = entry.identity.session
        now = self.clock()
        if now >= row.expires_at or self._idle(entry, row, now):
            await self.end(row.id, digest)
            return None
        entry.last_request = now
        if now - entry.touched >= self.touch_interval:
            await self.db.run(touch_session, row.id, now)
            entry.touched = now
        return entry.identity

    def was_removed(self, token: str) -> bool:
        """An unknown cookie whose session ended because git no longer declares its person
        (learnt by the lookup ``resolve_cookie`` just made; costs nothing more)."""
        return self._removed.pop(token_digest(token), False)

    async def _session_entry(self, digest: bytes) -> _Cached | None:
        """The cached entry, its row re-read from the database once the cache is stale
        (keeping what this process knows: its last request and write-back)."""
        entry = self._cache.get(digest)
        if entry is not None and self._is_fresh(entry):
            return entry
        row, removed = await self.db.run(read_session_or_removal, digest)
        if row is None:
            self._cache.pop(digest, None)
            if removed:
                self._removed[digest] = True
                while len(self._removed) > MAX_REMOVED_NOTICES:
                    self._removed.pop(next(iter(self._removed)))
            return None
        if entry is None:
            entry = _Cached(Identity(row.email, session=row), time.monotonic(), row.last_seen_at)
        else:
            entry.identity = Identity(row.email, session=row)
            entry.fetched = time.monotonic()
        self._remember(digest, entry)
        return entry

    def _idle(self, entry: _Cached, row: SessionRow, now: datetime) -> bool:
        """Idle since the last request this process served; when another daemon wrote a
        later one (or this process served none), with ``touch_interval`` of grace."""
        idle = timedelta(seconds=self.config.idle_timeout)
        mine = entry.last_request
        if mine is not None and row.last_seen_at <= entry.touched:
            return now - max(mine, row.last_seen_at) >= idle
        last = max(mine or row.last_seen_at, row.last_seen_at)
        return now - last >= idle + self.touch_interval

    async def resolve_bearer(self, token: str) -> Identity | None:
        if not token.startswith(API_TOKEN_PREFIX):
            return None
        digest = token_digest(token)
        cached = self._cache.get(digest)
        if cached is not None and self._is_fresh(cached):
            return cached.identity
        found = await self.db.run(read_api_token, digest)
        if found is None:
            return None
        identity = Identity(found.email, token_id=found.id)
        self._remember(digest, _Cached(identity, time.monotonic(), self.clock()))
        return identity

    async def end(self, session_id: int, digest: bytes | None = None) -> SessionRow | None:
        """Logout or revocation: gone from the database and from this process's cache."""
        row = await self.db.run(delete_session, session_id)
        self.forget(digest=digest, session_id=session_id)
        return row

    async def end_removed(self, session_id: int) -> None:
        """A session of someone git no longer declares: ended, and remembered as removed (a
        page's live stream may reach the server first; the page itself must still say why)."""
        await self.db.run(end_removed_session, session_id)
        self.forget(session_id=session_id)

    def forget(
        self,
        *,
        digest: bytes | None = None,
        session_id: int | None = None,
        email: str | None = None,
    ) -> None:
        if digest is not None:
            self._cache.pop(digest, None)
        if session_id is None and email is None:
            return
        for key, entry in list(self._cache.items()):
            ident = entry.identity
            if (email is not None and ident.email == email) or (
                session_id is not None and ident.session and ident.session.id == session_id
            ):
                del self._cache[key]

    def forget_all(self) -> None:
        self._cache.clear()

    def _is_fresh(self, entry: _Cached) -> bool:
        return time.monotonic() - entry.fetched < self.config.session_cache_seconds

    def _remember(self, digest: bytes, entry: _Cached) -> None:
        if digest not in self._cache and len(self._cache) >= CACHE_LIMIT:
            self._cache.clear()
        self._cache[digest] = entry
