"""The one exception tree of the project. Callers decide by branch, not by module.

::

    PbxError
    ├── Permanent                     the same input fails again: stall until it changes
    │   ├── SettingsError             a flag, env var or config file value we cannot use
    │   ├── NodeSpecError             a --freeswitch value we cannot use (password masked)
    │   ├── TemplateLoadError         a template override is missing or does not render
    │   │                             (serve.templating)
    │   ├── SnapshotError             a persisted snapshot is unreadable (serve.persist)
    │   │   └── SnapshotMismatch      ... or was written for another database, or by a
    │   │                             version that did not record one: never served
    │   ├── CallcenterError           mod_callcenter refused a command or listing
    │   ├── MalformedRequest          an xml_curl request we cannot read (serve.xmlcurl)
    │   ├── PortalError               a portal request refused, with its HTTP status (web.errors)
    │   ├── UnsafeArgument            a value that could run code on a switch: never sent
    │   ├── UnknownAgent              a status change for an agent that is not declared
    │   └── StoreError ∩ Permanent    InvalidDsn, UnknownTenant, UnknownExtension, TenantNotOrphaned,
    │                                 MigrationError, TenantApplyError (and StalePlan)
    └── Transient                     retry after a delay (full-jitter backoff)
        ├── SpecsUnavailable          the tenants directory cannot be read at all
        ├── GitSourceError            git could not fetch the spec branch (sources.git)
        ├── NodeUnreachable           a FreeSWITCH event socket is down or dropped
        ├── NodeTimeout               a switch did not answer one command in time
        ├── SnapshotNotPersisted      the served snapshot could not be written (disk full, ...)
        │   └── EmptySnapshotRefused  an empty snapshot would replace a file holding users
        └── StoreError ∩ Transient    StoreUnavailable

The live leaves (``NodeSpecError``, ``CallcenterError``, ``UnsafeArgument``, ``UnknownAgent``,
``NodeUnreachable``, ``NodeTimeout``) are defined in ``reconciler.switch.errors``. ``StoreError``
(``reconciler.store.errors``) is the store's own base and also a ``PbxError``;
each of its leaves picks a branch too, so ``except StoreError`` and ``except Transient`` both
work. Foreign errors (psycopg, sockets, ``EslError`` of the stdlib-only ESL client) are
translated where they are caught, with ``raise ... from exc``. Anything that is not a
``PbxError`` is a bug: logged with its traceback and retried with backoff.
"""

from __future__ import annotations


class PbxError(Exception):
    """Root of every error this project raises on purpose."""


class Permanent(PbxError):
    """Retrying with the same input cannot help: a person has to change something."""


class Transient(PbxError):
    """Something outside us is down or busy: retry after a delay."""


class SettingsError(Permanent, ValueError):
    """A configuration value we cannot use; the message never holds a secret."""


class SpecsUnavailable(Transient):
    """The spec directory cannot be read at all; a pass then changes nothing (it must never
    be read as "every tenant left git")."""
