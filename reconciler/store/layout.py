"""Names of the schemas the store owns: the control schema, one per tenant, archives.

The only place that spells a schema name; every use goes through ``psycopg.sql.Identifier``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from specs_schema.models import TENANT_ID_PATTERN

CONTROL_SCHEMA = "pbx"
TENANT_SCHEMA_PREFIX = "tenant_"
ARCHIVE_SCHEMA_PREFIX = "archive_"
APPLIED_CHANNEL = "pbx_applied"
"""NOTIFY channel; the payload is the tenant id whose data just committed."""

_TENANT_ID = re.compile(TENANT_ID_PATTERN)


def tenant_schema(tenant_id: str) -> str:
    """``tenant_<id>``; refuses ids the spec would refuse (they never name a schema)."""
    if not _TENANT_ID.match(tenant_id):
        raise ValueError(f"not a valid tenant id: {tenant_id!r}")
    return TENANT_SCHEMA_PREFIX + tenant_id


def archive_schema(tenant_id: str, at: datetime) -> str:
    """``archive_<id>_<UTC timestamp>``: at most 8 + 31 + 1 + 16 = 56 chars (< 63)."""
    tenant_schema(tenant_id)  # validates
    stamp = at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{ARCHIVE_SCHEMA_PREFIX}{tenant_id}_{stamp}"
