"""Settled tenants as recorded (``reconciler.core.settled``): one row per tenant a full pass
last found in sync, dropped with its tenant."""

from __future__ import annotations

from collections.abc import Collection, Mapping

import psycopg
from psycopg.types.json import Jsonb

from reconciler.core.settled import Settled
from reconciler.store.errors import translated


@translated
def read_settled(conn: psycopg.Connection) -> dict[str, Settled]:
    """``{tenant id: what was recorded}``."""
    rows = conn.execute("SELECT tenant_id, inputs, fingerprint, view FROM pbx.settled_tenants")
    return {
        tenant_id: Settled(inputs, fingerprint, view)
        for tenant_id, inputs, fingerprint, view in rows
    }


@translated
def record_settled(
    conn: psycopg.Connection, settled: Mapping[str, Settled], unsettled: Collection[str] = ()
) -> None:
    """Record ``settled`` (tenants no longer registered are skipped) and forget
    ``unsettled``, in one transaction."""
    with conn.transaction():
        if unsettled:
            conn.execute(
                "DELETE FROM pbx.settled_tenants WHERE tenant_id = ANY(%s)", (sorted(unsettled),)
            )
        if not settled:
            return
        with conn.cursor() as cur:
            cur.executemany(
                """
                INSERT INTO pbx.settled_tenants (tenant_id, inputs, fingerprint, view)
                SELECT id, %s, %s, %s FROM pbx.tenants WHERE id = %s
                ON CONFLICT (tenant_id) DO UPDATE
                SET inputs = excluded.inputs, fingerprint = excluded.fingerprint,
                    view = excluded.view, recorded_at = now()
                """,
                [
                    (s.inputs, s.fingerprint, Jsonb(dict(s.view)), tenant_id)
                    for tenant_id, s in sorted(settled.items())
                ],
            )
