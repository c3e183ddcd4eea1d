"""``PostgresStore``: the ``Store`` interface over one PostgreSQL database.

It owns one autocommit connection, reopened after a failure (``reset``), and for a pass that
changes many tenants (a cold start) a short-lived 2-connection pool that applies two
tenants at a time. ``own_backend_pids`` are the server pids this store wrote through: the
daemon recognises their ``NOTIFY pbx_applied`` as its own and skips a refresh.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Collection, Mapping, Sequence
from datetime import timedelta

import psycopg

from reconciler.core.model import PlatformState, State, TenantState
from reconciler.core.plan import Change, Plan
from reconciler.core.revision import GitRevision
from reconciler.core.settled import Settled
from reconciler.store.admins import (
    PlatformReport,
    apply_platform,
    read_platform,
    read_platform_admins,
)
from reconciler.store.apply import ApplyReport, apply_plan, record_attempt
from reconciler.store.credentials import CREDENTIALS_GRACE
from reconciler.store.database import connect, open_pool
from reconciler.store.domains import read_retired_domains
from reconciler.store.fingerprints import read_fingerprints
from reconciler.store.migrations import migrate
from reconciler.store.read import (
    RegistryEntry,
    read_a1_hashes,
    read_registry,
    read_state,
    read_voicemail_hashes,
)
from reconciler.store.settled import read_settled, record_settled
from reconciler.store.spec_status import SpecStatus, read_spec_status, record_spec_status


class PostgresStore:
    def __init__(
        self,
        dsn: str,
        *,
        host: str | None = None,
        parallel_threshold: int = 20,
        connect_timeout: float = 5.0,
        credentials_grace: timedelta = CREDENTIALS_GRACE,
    ) -> None:
        self.dsn = dsn
        self.credentials_grace = credentials_grace
        self.host = host or socket.gethostname()
        self.parallel_threshold = parallel_threshold
        self._connect_timeout = connect_timeout
        self._conn: psycopg.Connection | None = None
        self.own_backend_pids: frozenset[int] = frozenset()

    @property
    def connection(self) -> psycopg.Connection:
        """The store's connection, (re)opened on demand."""
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = connect(self.dsn, connect_timeout=self._connect_timeout)
            self.own_backend_pids = self.own_backend_pids | {self._conn.info.backend_pid}
        return self._conn

    def reset(self) -> None:
        """Drop the connection (after an error): the next call reconnects."""
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
        self._conn = None

    close = reset

    def migrate(self) -> None:
        migrate(self.connection)

    def read_state(self, tenants: Collection[str] | None = None) -> dict[str, TenantState]:
        return read_state(self.connection, tenants=tenants)

    def read_fingerprints(self, tenants: Collection[str] | None = None) -> dict[str, object]:
        return dict(read_fingerprints(self.connection, tenants=tenants))

    def read_registry(self) -> dict[str, RegistryEntry]:
        return read_registry(self.connection)

    def read_a1_hashes(self, tenants: Collection[str] | None = None) -> dict[tuple[str, str], str]:
        return read_a1_hashes(self.connection, tenants=tenants)

    def read_voicemail_hashes(
        self, tenants: Collection[str] | None = None
    ) -> dict[tuple[str, str], str]:
        return read_voicemail_hashes(self.connection, tenants=tenants)

    def read_spec_status(self) -> dict[str, SpecStatus]:
        return read_spec_status(self.connection)

    def read_platform_admins(self) -> dict[str, str]:
        return read_platform_admins(self.connection)

    def read_platform(self) -> PlatformState:
        return read_platform(self.connection)

    def read_retired_domains(self) -> frozenset[str]:
        return read_retired_domains(self.connection)

    def record_attempt(self, tenant_ids: Collection[str], revision: GitRevision | None) -> None:
        record_attempt(self.connection, tenant_ids, revision)

    def apply(
        self,
        plan: Plan,
        *,
        desired: State,
        revision: GitRevision | None,
        digests: Mapping[str, str],
        frozen: Collection[str],
    ) -> ApplyReport:
        conn = self.connection
        pids = {conn.info.backend_pid}
        arguments = {
            "desired": desired,
            "revision": revision,
            "host": self.host,
            "digests": digests,
            "frozen": frozen,
            "credentials_grace": self.credentials_grace,
        }
        if len(plan.tenants()) < self.parallel_threshold:
            self.own_backend_pids = frozenset(pids)
            return apply_plan(conn, plan, **arguments)  # type: ignore[arg-type]
        with open_pool(
            self.dsn, min_size=2, max_size=2, configure=lambda c: pids.add(c.info.backend_pid)
        ) as pool:
            self.own_backend_pids = frozenset(pids)
            return apply_plan(pool, plan, workers=2, **arguments)  # type: ignore[arg-type]

    def read_settled(self) -> dict[str, Settled]:
        return read_settled(self.connection)

    def record_settled(
        self, settled: Mapping[str, Settled], unsettled: Collection[str] = ()
    ) -> None:
        record_settled(self.connection, settled, unsettled)

    def record_spec_status(
        self,
        invalid: Mapping[str, tuple[str | None, Sequence[str]]],
        revision: GitRevision | None = None,
    ) -> None:
        record_spec_status(self.connection, invalid, revision=revision, host=self.host)

    def apply_platform(
        self,
        changes: Sequence[Change],
        *,
        desired: PlatformState | None,
        revision: GitRevision | None,
    ) -> PlatformReport:
        conn = self.connection
        self.own_backend_pids = frozenset({conn.info.backend_pid})
        return apply_platform(conn, changes, desired=desired, revision=revision, host=self.host)
