"""A tenant turning invalid, and valid again, is one apply history row each (action
``validate``) with the first error and the revision; staying invalid records nothing more."""

from __future__ import annotations

from reconciler.core.revision import GitRevision
from reconciler.store import PostgresStore, read_history

R1 = GitRevision("a" * 40, False)
R2 = GitRevision("b" * 40, True)
BAD = ["acme.yaml:3:1: domain: bad", "acme.yaml:9:5: extensions: worse"]


def test_turning_invalid_and_valid_again_is_recorded_once_each(pg_dsn: str) -> None:
    store = PostgresStore(pg_dsn)
    try:
        store.migrate()
        store.record_spec_status({"acme": ("acme.yaml", BAD)}, R1)
        store.record_spec_status({"acme": ("acme.yaml", BAD[1:])}, R1)  # still invalid
        store.record_spec_status({}, R2)
        rows = read_history(store.connection, tenant_id="acme")
    finally:
        store.close()
    assert [(h.action, h.result, h.revision, h.dirty, h.error) for h in rows] == [
        ("validate", "valid", R2.commit, True, None),
        ("validate", "invalid", R1.commit, False, BAD[0]),
    ]
