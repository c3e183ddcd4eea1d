"""The PostgreSQL store: migrations, actual state, apply, credentials, prune, history.

Layout: control schema ``pbx`` (tenant registry with settings, spec digest and revisions;
platform admins; the global DID index; the apply history; migration bookkeeping) and one
schema ``tenant_<id>`` per tenant (extensions, sip_credentials, users, user_extensions,
agents, queues, tiers, inbound_numbers). Writers serialize per tenant with a
transaction-scoped advisory lock (see ``locks``); every committed tenant write sends
``NOTIFY pbx_applied, '<tenant id>'``. Functions take autocommit connections (``connect``,
``open_pool``) and open the transactions they document. SQL identifiers are only ever
composed with ``psycopg.sql.Identifier``.

``Store`` (``protocol``) is the interface the reconcile pass uses; ``PostgresStore`` implements
it. The functions below it stay public for the CLI's one-off commands and the tests.

Exceptions (each leaf also a ``Permanent`` or ``Transient``, see ``reconciler.core.errors``)::

    StoreError
    ├── InvalidDsn                the database URL cannot be parsed (never quoted)
    ├── StoreUnavailable          database unreachable / connection lost (temporary)
    ├── MigrationError            a schema migration failed
    ├── TenantApplyError          one tenant rolled back (carries tenant_id, never a secret)
    │   └── StalePlan             the tenant changed since planning: plan again
    ├── UnknownTenant             no such tenant registered
    ├── UnknownExtension          the tenant has no such extension
    └── TenantNotOrphaned         prune refused for an active or suspended tenant
"""

from reconciler.store.admins import (
    PlatformReport,
    apply_platform,
    read_platform,
    read_platform_admins,
    sync_platform_admins,
)
from reconciler.store.apply import ApplyReport, apply_plan
from reconciler.store.credentials import (
    SipCredentials,
    rotate_credentials,
    show_credentials,
)
from reconciler.store.database import (
    DATABASE_URL_ENV,
    connect,
    database_url,
    default_data_dir,
    open_pool,
    read_only_dsn,
)
from reconciler.store.errors import (
    InvalidDsn,
    MigrationError,
    PlatformApplyError,
    StalePlan,
    StoreError,
    StoreUnavailable,
    TenantApplyError,
    TenantNotOrphaned,
    UnknownExtension,
    UnknownTenant,
)
from reconciler.store.extension_secrets import a1_hash
from reconciler.store.history import HistoryEntry, read_history
from reconciler.store.layout import APPLIED_CHANNEL, CONTROL_SCHEMA, tenant_schema
from reconciler.store.migrations import migrate
from reconciler.store.postgres import PostgresStore
from reconciler.store.protocol import Store
from reconciler.store.prune import prune_tenant
from reconciler.store.read import (
    RegistryEntry,
    read_a1_hashes,
    read_registry,
    read_state,
    read_tenant_state,
    read_voicemail_hashes,
)
from reconciler.store.spec_status import SpecStatus, read_spec_status, record_spec_status
from reconciler.store.voicemail_pins import rotate_pin, show_pin

__all__ = [
    "APPLIED_CHANNEL",
    "CONTROL_SCHEMA",
    "DATABASE_URL_ENV",
    "ApplyReport",
    "HistoryEntry",
    "InvalidDsn",
    "MigrationError",
    "PlatformApplyError",
    "PlatformReport",
    "PostgresStore",
    "RegistryEntry",
    "SipCredentials",
    "SpecStatus",
    "StalePlan",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "TenantApplyError",
    "TenantNotOrphaned",
    "UnknownExtension",
    "UnknownTenant",
    "a1_hash",
    "apply_plan",
    "apply_platform",
    "connect",
    "database_url",
    "default_data_dir",
    "migrate",
    "open_pool",
    "prune_tenant",
    "read_a1_hashes",
    "read_history",
    "read_only_dsn",
    "read_platform",
    "read_platform_admins",
    "read_registry",
    "read_spec_status",
    "read_state",
    "read_tenant_state",
    "read_voicemail_hashes",
    "record_spec_status",
    "rotate_credentials",
    "rotate_pin",
    "show_credentials",
    "show_pin",
    "sync_platform_admins",
    "tenant_schema",
]
