"""Prometheus metrics of one daemon, on a registry of its own (tests run several daemons
in one process; the global default registry would make them collide)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# xml_curl answers should be sub-millisecond: buckets start well below 1 ms.
_XMLCURL_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.1, 0.5, 2.0)
_RECONCILE_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class Metrics:
    """The daemon's metrics, one attribute each, declared in groups by what they watch.

    Declaration order is the order of ``/metrics``; the attribute names are what the rest
    of the daemon and the tests use.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._xmlcurl_children: dict[tuple[str, str], tuple[Any, Any]] = {}
        self._declare_reconcile_metrics(self.registry)
        self._declare_xmlcurl_metrics(self.registry)
        self._declare_switch_metrics(self.registry)
        self._declare_daemon_metrics(self.registry)
        self._declare_snapshot_metrics(self.registry)

    def _declare_reconcile_metrics(self, r: CollectorRegistry) -> None:
        """Reconcile passes: how long, how they ended, what they changed or held back."""
        self.reconcile_duration = Histogram(
            "pbx_reconcile_duration_seconds",
            "Duration of one reconcile pass.",
            ["trigger"],
            buckets=_RECONCILE_BUCKETS,
            registry=r,
        )
        self.reconcile_total = Counter(
            "pbx_reconcile_total", "Reconcile passes by result.", ["result"], registry=r
        )
        self.changes_applied = Counter(
            "pbx_changes_applied_total",
            "Database changes applied, by kind and action.",
            ["kind", "action"],
            registry=r,
        )
        self.tenant_apply_failures = Counter(
            "pbx_tenant_apply_failures_total", "Tenant applies rolled back.", ["tenant"], registry=r
        )
        self.invalid_tenants = Gauge(
            "pbx_invalid_tenants", "Tenants whose spec file is invalid (frozen).", registry=r
        )
        self.held_tenants = Gauge(
            "pbx_held_tenants",
            "Tenants a guard held back in the last pass (mass orphaning, a shrinking spec).",
            registry=r,
        )
        self.spec_errors = Gauge(
            "pbx_spec_errors", "Spec errors found by the last pass.", registry=r
        )

    def _declare_xmlcurl_metrics(self, r: CollectorRegistry) -> None:
        """mod_xml_curl lookups, the path every call and registration waits on."""
        self.xmlcurl_requests = Counter(
            "pbx_xmlcurl_requests_total",
            "mod_xml_curl requests by section and result.",
            ["section", "result"],
            registry=r,
        )
        self.xmlcurl_latency = Histogram(
            "pbx_xmlcurl_request_duration_seconds",
            "Time to answer a mod_xml_curl request.",
            ["section"],
            buckets=_XMLCURL_BUCKETS,
            registry=r,
        )

    def _declare_switch_metrics(self, r: CollectorRegistry) -> None:
        """The event-socket link to each node and what was changed live through it."""
        self.esl_connected = Gauge(
            "pbx_esl_connected",
            "1 when the node's event socket is connected.",
            ["node"],
            registry=r,
        )
        self.live_commands = Counter(
            "pbx_callcenter_commands_total",
            "Mutating callcenter_config commands sent, by node.",
            ["node"],
            registry=r,
        )
        self.drift_repairs = Counter(
            "pbx_drift_repairs_total",
            "Live mod_callcenter changes made to repair drift, by node.",
            ["node"],
            registry=r,
        )

    def _declare_daemon_metrics(self, r: CollectorRegistry) -> None:
        """Whether this daemon may apply, and whether it reaches its database."""
        self.leader = Gauge("pbx_leader", "1 when this daemon holds the apply lock.", registry=r)
        self.database_up = Gauge("pbx_database_up", "1 when PostgreSQL is reachable.", registry=r)
        self.xmlcurl_workers = Gauge(
            "pbx_xmlcurl_workers", "xml_curl worker processes running.", registry=r
        )
        self.xmlcurl_worker_restarts = Counter(
            "pbx_xmlcurl_worker_restarts_total",
            "xml_curl worker processes that exited while the daemon ran, and were replaced.",
            registry=r,
        )
        self.audio_pruned = Counter(
            "pbx_audio_pruned_total",
            "Audio files deleted because they were older than their tenant's retention.",
            ["kind"],
            registry=r,
        )

    def _declare_snapshot_metrics(self, r: CollectorRegistry) -> None:
        """The served snapshot: its age, size and whether it survives a restart."""
        self.snapshot_generation_time = Gauge(
            "pbx_snapshot_built_timestamp_seconds",
            "When the served snapshot was built (unix time).",
            registry=r,
        )
        self.snapshot_users = Gauge(
            "pbx_snapshot_users", "SIP users in the served snapshot.", registry=r
        )
        self.snapshot_persisted_time = Gauge(
            "pbx_snapshot_persisted_timestamp",
            "When the served snapshot was last written to the state dir (unix time).",
            registry=r,
        )
        self.snapshot_persist_failures = Counter(
            "pbx_snapshot_persist_failures_total",
            "Snapshots not written: write errors and refused empty overwrites.",
            registry=r,
        )

    def observe_xmlcurl(self, section: str, result: str, seconds: float) -> None:
        # on the request path: label children are looked up once, not per request
        key = (section or "none", result)
        children = self._xmlcurl_children.get(key)
        if children is None:
            children = (
                self.xmlcurl_requests.labels(*key),
                self.xmlcurl_latency.labels(key[0]),
            )
            self._xmlcurl_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
