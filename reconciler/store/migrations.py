"""Versioned schema migrations: one list for the control schema ``pbx``, one list applied to
every tenant schema ``tenant_<id>``; each applied version is recorded per schema in
``pbx.schema_migrations``.

``migrate(conn)`` is idempotent and safe to run from several daemons at once (it takes the
global migration lock, then each tenant's lock). A new tenant's schema is created and migrated
by ``create_tenant_schema`` inside the transaction that fills it, so a failed first apply
leaves no half-built schema behind.

Migrations are append-only: never edit a released one, add the next version.

Foreign keys are immediate and match the planner's order (creates/updates parents first,
deletes children first): tiers -> queues/agents, user links -> users (cascade: the links are
part of the user) and -> extensions, agent extension -> extensions, DID destination ->
extensions/queues, credentials -> extensions (cascade). A queue's dial number is unique but
checked at commit (DEFERRABLE), because two queues may swap numbers within one plan.

Tenant tables are sized for a thousand schemas in one database: bounded ``varchar(n)``
columns (the spec's own limits) keep all but ``queues`` free of TOAST tables, and there are
no secondary indexes (a tenant holds hundreds of rows; a foreign-key check on delete scans
them faster than an index costs to create and to load into every backend's catalog cache).
That halves the relations per tenant: faster tenant creation and faster cold reads.
``retired_credentials`` (a deleted extension's password, kept for a grace period) has no key
either: the writer deletes before it inserts, and the table holds a handful of rows.

Tenant migration 3 gives the extensions that exist then a voicemail PIN drawn in SQL: the
decimal digits of two MD5s of ``gen_random_uuid()`` (PostgreSQL's strong random source),
the first six taken (uniform: MD5's hex digits are, and 64 of them hold six decimal digits
but for a chance of about 1e-17). Later PINs are drawn in Python (``store.voicemail_pins``).

Tenant migration 7 adds the call history's
daily rollup, counted from the calls already filed, and the number search's trigram index
when ``pg_trgm`` can be created (the embedded pgserver has no contrib modules: the search
then scans, nothing fails).

Control migration 12 and tenant migration 9 keep a change counter per tenant: a statement
trigger on every table the stored state is read from sets the tenant's row of
``pbx.tenant_changes`` to a fresh value of one sequence, whoever writes (see
``reconciler.store.fingerprints``, which reads it). The counters live in the control schema,
keyed by schema name: one small table answers for every tenant in one query (a table per
tenant would cost the server one relation to open per tenant in every fresh session). The
trigger function is ``SECURITY DEFINER`` and bumps only the row named by the schema of the
table written (``TG_TABLE_SCHEMA``), so a role confined to its tenant's schema needs no
right on ``pbx`` to be counted and can neither read any counter nor move another tenant's.
Writes that fire no trigger (``session_replication_role = replica``, ``ALTER TABLE ...
DISABLE TRIGGER``, a trigger dropped by hand) are not counted: out of scope, like any edit
made by switching the product's safeguards off.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql

from reconciler.store.errors import MigrationError, describe_db_error
from reconciler.store.layout import CONTROL_SCHEMA, tenant_schema
from reconciler.store.locks import lock_migrations, lock_tenant


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema version. ``body`` may name the target schema as ``{schema}``."""

    version: int
    name: str
    body: sql.SQL


_BOOTSTRAP = sql.SQL("""
CREATE SCHEMA IF NOT EXISTS pbx;
CREATE TABLE IF NOT EXISTS pbx.schema_migrations (
    schema_name text NOT NULL,
    version integer NOT NULL,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (schema_name, version)
);
""")

CONTROL_MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "tenant registry, platform admins, DID index, apply history",
        sql.SQL("""
CREATE TABLE pbx.tenants (
    id text PRIMARY KEY,
    schema_name text NOT NULL UNIQUE,
    domain text NOT NULL CHECK (domain = lower(domain)),
    name text NOT NULL,
    status text NOT NULL CHECK (status IN ('active', 'suspended', 'orphaned')),
    extension_min integer NOT NULL,
    extension_max integer NOT NULL,
    call_timeout integer NOT NULL,
    outbound_caller_id_name text,
    outbound_caller_id_number text,
    feature_available text NOT NULL,
    feature_on_break text NOT NULL,
    feature_logged_out text NOT NULL,
    spec_digest text,
    applied_revision text,
    applied_dirty boolean,
    applied_at timestamptz,
    attempted_revision text,
    attempted_dirty boolean,
    attempted_at timestamptz,
    last_result text CHECK (last_result IN ('applied', 'failed')),
    last_error text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX tenants_domain_key ON pbx.tenants (lower(domain));

CREATE TABLE pbx.platform_admins (
    email text PRIMARY KEY CHECK (email = lower(email)),
    name text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE pbx.did_index (
    number text PRIMARY KEY,
    tenant_id text NOT NULL REFERENCES pbx.tenants (id) ON DELETE CASCADE
);
CREATE INDEX did_index_tenant ON pbx.did_index (tenant_id);

CREATE TABLE pbx.apply_history (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id text NOT NULL,
    at timestamptz NOT NULL DEFAULT clock_timestamp(),
    revision text,
    dirty boolean,
    host text NOT NULL,
    action text NOT NULL CHECK (action IN ('apply', 'prune', 'rotate')),
    result text NOT NULL CHECK (result IN ('applied', 'failed')),
    changes jsonb NOT NULL DEFAULT '[]',
    error text
);
CREATE INDEX apply_history_tenant_at ON pbx.apply_history (tenant_id, at DESC);
"""),
    ),
    Migration(
        2,
        "spec status: a tenant's invalid-spec errors outlive the process that found them",
        sql.SQL("""
CREATE TABLE pbx.spec_status (
    tenant_id text PRIMARY KEY,
    spec_file text,
    errors jsonb NOT NULL DEFAULT '[]',
    since timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
"""),
    ),
    Migration(
        3,
        "claims checked at commit (swaps in one transaction); tenant ids can be renamed",
        sql.SQL("""
DROP INDEX pbx.tenants_domain_key;
ALTER TABLE pbx.tenants
    ADD CONSTRAINT tenants_domain_unique UNIQUE (domain) DEFERRABLE INITIALLY IMMEDIATE;
ALTER TABLE pbx.did_index
    DROP CONSTRAINT did_index_pkey,
    ADD CONSTRAINT did_index_number_unique UNIQUE (number) DEFERRABLE INITIALLY IMMEDIATE,
    DROP CONSTRAINT did_index_tenant_id_fkey,
    ADD CONSTRAINT did_index_tenant_id_fkey FOREIGN KEY (tenant_id)
        REFERENCES pbx.tenants (id) ON DELETE CASCADE ON UPDATE CASCADE;
"""),
    ),
    Migration(
        4,
        "retired domains: what the reconciler once owned on the switches stays its to remove",
        sql.SQL("""
CREATE TABLE pbx.retired_domains (
    domain text PRIMARY KEY CHECK (domain = lower(domain)),
    tenant_id text NOT NULL,
    retired_at timestamptz NOT NULL DEFAULT now()
);
"""),
    ),
    Migration(
        5,
        "portal: accounts, invitations, sessions, API tokens, audit",
        sql.SQL("""
CREATE TABLE pbx.portal_accounts (
    email text PRIMARY KEY CHECK (email = lower(email)),
    password_hash text NOT NULL,
    totp_secret text,
    totp_last_step bigint,
    created_at timestamptz NOT NULL DEFAULT now(),
    password_changed_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE pbx.portal_invitations (
    token_hash bytea PRIMARY KEY,
    email text NOT NULL CHECK (email = lower(email)),
    totp_secret text,
    created_by text,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at timestamptz
);
CREATE INDEX portal_invitations_email ON pbx.portal_invitations (email);
CREATE TABLE pbx.portal_sessions (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    token_hash bytea NOT NULL UNIQUE,
    email text NOT NULL REFERENCES pbx.portal_accounts (email) ON DELETE CASCADE,
    csrf_token text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    client_addr text,
    user_agent text
);
CREATE INDEX portal_sessions_email ON pbx.portal_sessions (email);
CREATE TABLE pbx.portal_api_tokens (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    token_hash bytea NOT NULL UNIQUE,
    email text NOT NULL REFERENCES pbx.portal_accounts (email) ON DELETE CASCADE,
    name text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz
);
CREATE INDEX portal_api_tokens_email ON pbx.portal_api_tokens (email);
CREATE TABLE pbx.portal_audit (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor text,
    tenant_id text,
    action text NOT NULL,
    target text,
    result text NOT NULL CHECK (result IN ('ok', 'failed', 'denied')),
    client_addr text,
    detail text
);
CREATE INDEX portal_audit_tenant ON pbx.portal_audit (tenant_id, id DESC);
"""),
    ),
    Migration(
        6,
        "installation identity (binds persisted snapshots to this database)",
        sql.SQL("""
CREATE TABLE pbx.installation (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    installation_id uuid NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO pbx.installation (installation_id) VALUES (gen_random_uuid());
"""),
    ),
    Migration(
        7,
        "portal: password resets beside invitations, expiring API tokens, audit rows of every tenant",
        sql.SQL("""
ALTER TABLE pbx.portal_invitations
    ADD COLUMN purpose text NOT NULL DEFAULT 'invite' CHECK (purpose IN ('invite', 'reset'));
ALTER TABLE pbx.portal_api_tokens ADD COLUMN expires_at timestamptz;
UPDATE pbx.portal_api_tokens SET expires_at = created_at + interval '90 days';
ALTER TABLE pbx.portal_api_tokens ALTER COLUMN expires_at SET NOT NULL;
ALTER TABLE pbx.portal_audit ADD COLUMN tenant_ids text[] NOT NULL DEFAULT '{{}}';
CREATE INDEX portal_audit_tenant_ids ON pbx.portal_audit USING gin (tenant_ids);
"""),
    ),
    Migration(
        8,
        "portal: sessions ended because git no longer declares their person",
        sql.SQL("""
CREATE TABLE pbx.portal_removed_sessions (
    token_hash bytea PRIMARY KEY,
    removed_at timestamptz NOT NULL DEFAULT now()
);
"""),
    ),
    Migration(
        9,
        "apply history: a tenant turning invalid and valid again (action 'validate')",
        sql.SQL("""
ALTER TABLE pbx.apply_history
    DROP CONSTRAINT apply_history_action_check,
    DROP CONSTRAINT apply_history_result_check,
    ADD CONSTRAINT apply_history_action_check
        CHECK (action IN ('apply', 'prune', 'rotate', 'validate')),
    ADD CONSTRAINT apply_history_result_check
        CHECK (result IN ('applied', 'failed', 'invalid', 'valid'));
"""),
    ),
    Migration(
        10,
        "settled tenants: the inputs and stored-state digests of tenants last found in sync",
        sql.SQL("""
CREATE TABLE pbx.settled_tenants (
    tenant_id text PRIMARY KEY REFERENCES pbx.tenants (id) ON DELETE CASCADE ON UPDATE CASCADE,
    inputs text NOT NULL,
    fingerprint text NOT NULL,
    view jsonb NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
"""),
    ),
    Migration(
        11,
        "carrier gateways of _platform.yaml (the password stays on the host: a marker only)",
        sql.SQL("""
CREATE TABLE pbx.platform_gateways (
    name text PRIMARY KEY CHECK (name ~ '^[a-z0-9][a-z0-9_.-]{{0,62}}$'),
    config jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
"""),
    ),
    Migration(
        12,
        "tenant change counters: one row per tenant schema, set by its state tables' triggers",
        sql.SQL("""
CREATE SEQUENCE pbx.tenant_change_seq;
CREATE TABLE pbx.tenant_changes (
    schema_name text PRIMARY KEY,
    last_change bigint NOT NULL
);
CREATE FUNCTION pbx.count_tenant_change() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $count$
BEGIN
    UPDATE pbx.tenant_changes SET last_change = nextval('pbx.tenant_change_seq')
    WHERE schema_name = TG_TABLE_SCHEMA;
    RETURN NULL;
END
$count$;
"""),
    ),
)

TENANT_MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "extensions, credentials, users, agents, queues, tiers, inbound numbers",
        sql.SQL("""
CREATE TABLE {schema}.extensions (
    number varchar(15) PRIMARY KEY CHECK (number ~ '^[0-9]+$'),
    name varchar(120) NOT NULL,
    caller_id_name varchar(120),
    caller_id_number varchar(21),
    enabled boolean NOT NULL,
    call_timeout integer,
    max_registrations integer NOT NULL CHECK (max_registrations > 0)
);
CREATE TABLE {schema}.sip_credentials (
    extension varchar(15) PRIMARY KEY
        REFERENCES {schema}.extensions (number) ON DELETE CASCADE,
    password varchar(64) NOT NULL CHECK (length(password) >= 22),
    a1_hash char(32) NOT NULL CHECK (a1_hash ~ '^[0-9a-f]{{32}}$'),
    created_at timestamptz NOT NULL DEFAULT now(),
    rotated_at timestamptz
);
CREATE TABLE {schema}.users (
    email varchar(254) PRIMARY KEY CHECK (email = lower(email)),
    name varchar(120) NOT NULL,
    role varchar(16) NOT NULL CHECK (role IN ('admin', 'agent', 'member'))
);
CREATE TABLE {schema}.user_extensions (
    user_email varchar(254) NOT NULL REFERENCES {schema}.users (email) ON DELETE CASCADE,
    extension varchar(15) NOT NULL REFERENCES {schema}.extensions (number),
    PRIMARY KEY (user_email, extension)
);
CREATE TABLE {schema}.agents (
    name varchar(63) PRIMARY KEY,
    type varchar(16) NOT NULL,
    contact varchar(255) NOT NULL,
    extension varchar(15) REFERENCES {schema}.extensions (number),
    max_no_answer integer NOT NULL,
    wrap_up_time integer NOT NULL,
    reject_delay_time integer NOT NULL,
    busy_delay_time integer NOT NULL,
    no_answer_delay_time integer NOT NULL,
    initial_status varchar(32)
);
CREATE TABLE {schema}.queues (
    name varchar(63) PRIMARY KEY,
    number varchar(15) NOT NULL CHECK (number ~ '^[0-9]+$'),
    strategy varchar(32) NOT NULL,
    moh_sound text,
    announce_sound text,
    announce_frequency integer NOT NULL,
    record_template text,
    time_base_score varchar(16) NOT NULL,
    tier_rules_apply boolean NOT NULL,
    tier_rule_wait_second integer NOT NULL,
    tier_rule_wait_multiply_level boolean NOT NULL,
    tier_rule_no_agent_no_wait boolean NOT NULL,
    discard_abandoned_after integer NOT NULL,
    abandoned_resume_allowed boolean NOT NULL,
    max_wait_time integer NOT NULL,
    max_wait_time_with_no_agent integer NOT NULL,
    max_wait_time_with_no_agent_time_reached integer NOT NULL,
    ring_progressively_delay integer NOT NULL,
    skip_agents_with_external_calls boolean NOT NULL,
    agent_no_answer_status varchar(32) NOT NULL,
    CONSTRAINT queues_number_key UNIQUE (number) DEFERRABLE INITIALLY DEFERRED
);
CREATE TABLE {schema}.tiers (
    queue varchar(63) NOT NULL REFERENCES {schema}.queues (name),
    agent varchar(63) NOT NULL REFERENCES {schema}.agents (name),
    level integer NOT NULL,
    position integer NOT NULL,
    PRIMARY KEY (queue, agent)
);
CREATE TABLE {schema}.inbound_numbers (
    number varchar(16) PRIMARY KEY CHECK (number ~ '^\\+[1-9][0-9]+$'),
    extension varchar(15) REFERENCES {schema}.extensions (number),
    queue varchar(63) REFERENCES {schema}.queues (name),
    CHECK ((extension IS NULL) <> (queue IS NULL))
);
"""),
    ),
    Migration(
        2,
        "retired credentials: a re-added extension gets its password back within the grace",
        sql.SQL("""
CREATE TABLE {schema}.retired_credentials (
    extension varchar(15) NOT NULL CHECK (extension ~ '^[0-9]+$'),
    password varchar(64) NOT NULL CHECK (length(password) >= 22),
    a1_hash char(32) NOT NULL CHECK (a1_hash ~ '^[0-9a-f]{{32}}$'),
    retired_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
"""),
    ),
    Migration(
        3,
        "voicemail: each extension's box settings and its generated PIN (with its digest)",
        sql.SQL("""
ALTER TABLE {schema}.extensions
    ADD COLUMN voicemail_enabled boolean NOT NULL DEFAULT false,
    ADD COLUMN voicemail_max_message_seconds integer NOT NULL DEFAULT 120,
    ADD COLUMN voicemail_pin_on_own_phone boolean NOT NULL DEFAULT true;
CREATE TABLE {schema}.voicemail_pins (
    extension varchar(15) PRIMARY KEY
        REFERENCES {schema}.extensions (number) ON DELETE CASCADE,
    pin varchar(12) NOT NULL CHECK (pin ~ '^[0-9]{{6,12}}$'),
    vm_a1_hash char(32) NOT NULL CHECK (vm_a1_hash ~ '^[0-9a-f]{{32}}$'),
    created_at timestamptz NOT NULL DEFAULT now(),
    rotated_at timestamptz
);
INSERT INTO {schema}.voicemail_pins (extension, pin, vm_a1_hash)
SELECT number, pin, md5(number || ':' || domain || ':' || pin)
FROM (
    SELECT e.number, t.domain, substr(regexp_replace(
        md5(gen_random_uuid()::text) || md5(gen_random_uuid()::text), '[^0-9]', '', 'g'
    ), 1, 6) AS pin
    FROM {schema}.extensions e
    JOIN pbx.tenants t ON t.schema_name = '{schema}'::regnamespace::text
) fresh;
"""),
    ),
    Migration(
        4,
        "call history: one row per call leg, keyed by the switch's uuid",
        sql.SQL("""
CREATE TABLE {schema}.calls (
    uuid varchar(64) PRIMARY KEY,
    call_uuid varchar(64) NOT NULL,
    leg char(1) NOT NULL CHECK (leg IN ('a', 'b')),
    domain varchar(253) NOT NULL,
    direction varchar(10) NOT NULL,
    outcome varchar(10) NOT NULL,
    hangup_cause varchar(120) NOT NULL,
    from_number varchar(120) NOT NULL,
    from_name varchar(120) NOT NULL,
    to_number varchar(120) NOT NULL,
    did varchar(120),
    from_extension varchar(120),
    to_extension varchar(120),
    queue varchar(120),
    agent varchar(120),
    bridge_uuid varchar(120),
    started_at timestamptz NOT NULL,
    answered_at timestamptz,
    ended_at timestamptz NOT NULL,
    ring_seconds integer NOT NULL,
    talk_seconds integer NOT NULL,
    node varchar(120) NOT NULL,
    ingested_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX calls_a_started ON {schema}.calls (started_at DESC, uuid DESC) WHERE leg = 'a';
CREATE INDEX calls_call ON {schema}.calls (call_uuid);
CREATE INDEX calls_from_ext ON {schema}.calls (from_extension, started_at DESC) WHERE leg = 'a';
CREATE INDEX calls_to_ext ON {schema}.calls (to_extension, started_at DESC) WHERE leg = 'a';
CREATE INDEX calls_agent ON {schema}.calls (agent, started_at DESC) WHERE leg = 'a';
"""),
    ),
    Migration(
        5,
        "an extension's call recording: inbound, outbound, all or none",
        sql.SQL("""
ALTER TABLE {schema}.extensions ADD COLUMN record varchar(8) NOT NULL DEFAULT 'none'
    CHECK (record IN ('inbound', 'outbound', 'all', 'none'));
"""),
    ),
    Migration(
        6,
        "a voicemail box's greeting: a sound as the spec declares it (tenant: or FreeSWITCH's)",
        sql.SQL("""
ALTER TABLE {schema}.extensions ADD COLUMN voicemail_greeting varchar(255);
"""),
    ),
    Migration(
        7,
        "call history: a daily rollup of a legs for totals, a trigram index for number search",
        sql.SQL("""
CREATE TABLE {schema}.calls_daily (
    day date NOT NULL,
    direction varchar(10) NOT NULL,
    outcome varchar(10) NOT NULL,
    queue varchar(120) NOT NULL,
    ring integer NOT NULL,
    calls bigint NOT NULL,
    talk_seconds bigint NOT NULL,
    PRIMARY KEY (day, direction, outcome, queue, ring)
);
INSERT INTO {schema}.calls_daily (day, direction, outcome, queue, ring, calls, talk_seconds)
SELECT (started_at AT TIME ZONE 'UTC')::date, direction, outcome, coalesce(queue, ''),
    CASE WHEN outcome = 'answered' AND coalesce(queue, '') <> ''
        THEN greatest(least(ring_seconds, 3601), 0) ELSE -1 END,
    count(*), sum(talk_seconds)
FROM {schema}.calls WHERE leg = 'a' GROUP BY 1, 2, 3, 4, 5;
DO $migration$
BEGIN
    BEGIN
        CREATE EXTENSION IF NOT EXISTS pg_trgm;
    EXCEPTION WHEN OTHERS THEN
        RAISE NOTICE 'pg_trgm unavailable (%): number search scans', SQLERRM;
    END;
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
        EXECUTE format(
            'CREATE INDEX calls_numbers_trgm ON %I.calls USING gin ('
            '(from_number || E''\\n'' || to_number || E''\\n'' || coalesce(did, '''')) '
            '%I.gin_trgm_ops) WHERE leg = ''a''',
            (SELECT nspname FROM pg_namespace WHERE oid = '{schema}'::regnamespace),
            (SELECT n.nspname FROM pg_extension e
                JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_trgm')
        );
    END IF;
END
$migration$;
"""),
    ),
    Migration(
        8,
        "outbound calling: the tenant's settings and routes, each extension's calling right, "
        "the gateway of a call",
        sql.SQL(r"""
ALTER TABLE {schema}.extensions
    ADD COLUMN calling_right varchar(16) NOT NULL DEFAULT 'internal'
    CHECK (calling_right IN ('internal', 'local', 'national', 'international'));
CREATE TABLE {schema}.outbound (
    key varchar(8) PRIMARY KEY CHECK (key = 'outbound'),
    country char(2) NOT NULL,
    caller_id_number varchar(16) NOT NULL CHECK (caller_id_number ~ '^\+[1-9][0-9]+$'),
    caller_id_name varchar(120),
    area_code varchar(5),
    emergency_caller_id_number varchar(16),
    emergency_numbers text[] NOT NULL,
    max_concurrent integer NOT NULL CHECK (max_concurrent > 0),
    calls_per_minute integer NOT NULL CHECK (calls_per_minute > 0),
    international boolean NOT NULL
);
CREATE TABLE {schema}.outbound_routes (
    match varchar(16) PRIMARY KEY,
    gateways text[] NOT NULL CHECK (cardinality(gateways) > 0)
);
ALTER TABLE {schema}.calls ADD COLUMN gateway varchar(120);
"""),
    ),
    Migration(
        9,
        "change counter: every write to the tenant's state tables sets its pbx.tenant_changes row",
        # every table the state is read from (a table added later that it is read from
        # gets its trigger in its own migration: tests/store/test_change_counter.py checks)
        sql.SQL("""
CREATE TRIGGER count_change AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {schema}.extensions
    FOR EACH STATEMENT EXECUTE FUNCTION pbx.count_tenant_change();
CREATE TRIGGER count_change AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {schema}.users
    FOR EACH STATEMENT EXECUTE FUNCTION pbx.count_tenant_change();
CREATE TRIGGER count_change AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {schema}.agents
    FOR EACH STATEMENT EXECUTE FUNCTION pbx.count_tenant_change();
CREATE TRIGGER count_change AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {schema}.queues
    FOR EACH STATEMENT EXECUTE FUNCTION pbx.count_tenant_change();
CREATE TRIGGER count_change AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {schema}.tiers
    FOR EACH STATEMENT EXECUTE FUNCTION pbx.count_tenant_change();
CREATE TRIGGER count_change AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {schema}.inbound_numbers
    FOR EACH STATEMENT EXECUTE FUNCTION pbx.count_tenant_change();
CREATE TRIGGER count_change AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {schema}.outbound
    FOR EACH STATEMENT EXECUTE FUNCTION pbx.count_tenant_change();
CREATE TRIGGER count_change AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {schema}.outbound_routes
    FOR EACH STATEMENT EXECUTE FUNCTION pbx.count_tenant_change();
CREATE TRIGGER count_change AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {schema}.user_extensions
    FOR EACH STATEMENT EXECUTE FUNCTION pbx.count_tenant_change();
CREATE TRIGGER count_change AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {schema}.sip_credentials
    FOR EACH STATEMENT EXECUTE FUNCTION pbx.count_tenant_change();
CREATE TRIGGER count_change AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {schema}.voicemail_pins
    FOR EACH STATEMENT EXECUTE FUNCTION pbx.count_tenant_change();
INSERT INTO pbx.tenant_changes (schema_name, last_change)
SELECT nspname, nextval('pbx.tenant_change_seq') FROM pg_namespace
WHERE oid = '{schema}'::regnamespace
ON CONFLICT (schema_name) DO UPDATE SET last_change = excluded.last_change;
"""),
    ),
)

CONTROL_VERSION = CONTROL_MIGRATIONS[-1].version
TENANT_VERSION = TENANT_MIGRATIONS[-1].version


def migrate(conn: psycopg.Connection) -> list[tuple[str, int]]:
    """Bring the control schema and every registered tenant schema to the latest version.

    Returns the ``(schema, version)`` pairs applied now (empty when already current).
    """
    applied: list[tuple[str, int]] = []
    try:
        with conn.transaction():
            lock_migrations(conn)
            conn.execute(_BOOTSTRAP)
            applied += _apply_pending(conn, CONTROL_SCHEMA, CONTROL_MIGRATIONS)
            behind = conn.execute(
                """
                SELECT t.id FROM pbx.tenants t
                LEFT JOIN (
                    SELECT schema_name, count(*) AS applied
                    FROM pbx.schema_migrations GROUP BY schema_name
                ) m ON m.schema_name = t.schema_name
                WHERE coalesce(m.applied, 0) < %s
                ORDER BY t.id
                """,
                # by count, not the highest version: versions merged out of order (a
                # branch's 4 applied before another's 3) are still found missing
                (len(TENANT_MIGRATIONS),),
            ).fetchall()
        # One transaction per tenant schema: a thousand schemas' DDL in one transaction
        # would exhaust the lock table.
        for (tenant_id,) in behind:
            with conn.transaction():
                lock_migrations(conn)
                lock_tenant(conn, tenant_id)
                applied += _apply_pending(conn, tenant_schema(tenant_id), TENANT_MIGRATIONS)
    except psycopg.Error as exc:
        raise MigrationError(f"schema migration failed: {describe_db_error(exc)}") from exc
    return applied


def create_tenant_schema(conn: psycopg.Connection, tenant_id: str) -> None:
    """Create and fully migrate ``tenant_<id>`` in the caller's transaction (its first apply),
    in one round trip: ``CREATE SCHEMA``, every tenant migration and their bookkeeping rows as
    one multi-statement query. One statement at a time that was a round trip per migration: a
    third of a cold apply on a loaded server."""
    name = tenant_schema(tenant_id)
    schema = sql.Identifier(name)
    versions = sql.SQL(", ").join(
        sql.SQL("({}, {}, {})").format(
            sql.Literal(name), sql.Literal(m.version), sql.Literal(m.name)
        )
        for m in TENANT_MIGRATIONS
    )
    statements = [
        sql.SQL("CREATE SCHEMA {}").format(schema),
        *(m.body.format(schema=schema) for m in TENANT_MIGRATIONS),
        sql.SQL("INSERT INTO pbx.schema_migrations (schema_name, version, name) VALUES {}").format(
            versions
        ),
    ]
    conn.execute(sql.SQL(";\n").join(statements))  # no parameters: simple protocol


def rename_schema(conn: psycopg.Connection, old: str, new: str) -> None:
    """Rename a tenant schema with what is keyed by its name: its migration bookkeeping and
    its change counter (set afresh: whatever was read under the old name is stale)."""
    conn.execute(
        sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(sql.Identifier(old), sql.Identifier(new))
    )
    conn.execute(
        "UPDATE pbx.schema_migrations SET schema_name = %s WHERE schema_name = %s", (new, old)
    )
    conn.execute(
        "UPDATE pbx.tenant_changes SET schema_name = %s,"
        " last_change = nextval('pbx.tenant_change_seq') WHERE schema_name = %s",
        (new, old),
    )


def applied_versions(conn: psycopg.Connection, schema: str) -> list[int]:
    """Versions recorded for one schema, ascending."""
    rows = conn.execute(
        "SELECT version FROM pbx.schema_migrations WHERE schema_name = %s ORDER BY version",
        (schema,),
    ).fetchall()
    return [version for (version,) in rows]


def _apply_pending(
    conn: psycopg.Connection, schema: str, migrations: tuple[Migration, ...]
) -> list[tuple[str, int]]:
    done = set(applied_versions(conn, schema))
    applied: list[tuple[str, int]] = []
    for migration in migrations:
        if migration.version in done:
            continue
        conn.execute(migration.body.format(schema=sql.Identifier(schema)))
        conn.execute(
            "INSERT INTO pbx.schema_migrations (schema_name, version, name) VALUES (%s, %s, %s)",
            (schema, migration.version, migration.name),
        )
        applied.append((schema, migration.version))
    return applied
