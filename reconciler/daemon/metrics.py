"""Prometheus metrics of one daemon, on a registry of its own (tests run several daemons
in one process; the global default registry would make them collide).

The xml_curl families (``pbx_xmlcurl_requests_total``,
``pbx_xmlcurl_request_duration_seconds``) are the same whoever answers: this process's own
answers plus, with workers, what each worker published on its board
(``reconciler.dataplane.board``), so a dashboard does not care which mode runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from reconciler.dataplane.board import RESULTS, SECTIONS, XMLCURL_BUCKETS, WorkerCounts
from reconciler.web.recording_index import IndexStats

RESTART_REASONS = ("crash", "hang")
_RECONCILE_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class Metrics:
    """The daemon's metrics, one attribute each, declared in groups by what they watch.

    Declaration order is the order of ``/metrics``; the attribute names are what the rest
    of the daemon and the tests use.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.xmlcurl_counts = WorkerCounts()  # answered in this process
        self.worker_counts: Callable[[], WorkerCounts | None] = lambda: None
        # the portal's recordings index (none when the portal is off)
        self.recording_index: Callable[[], IndexStats | None] = lambda: None
        self._declare_reconcile_metrics(self.registry)
        self._declare_xmlcurl_metrics(self.registry)
        self._declare_switch_metrics(self.registry)
        self._declare_daemon_metrics(self.registry)
        self._declare_snapshot_metrics(self.registry)
        self._declare_cdr_metrics(self.registry)
        self.registry.register(_RecordingIndexCollector(self))

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
        r.register(_XmlCurlCollector(self))

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
        self.gateway_state = Gauge(
            "pbx_gateway_state",
            "1 for a carrier gateway's registration state on a node (REGED, NOREG, TRYING, "
            "FAILED, FAIL_WAIT, ...), as sofia xmlstatus gateway reports it.",
            ["node", "gateway", "state"],
            registry=r,
        )
        self.gateway_up = Gauge(
            "pbx_gateway_up",
            "1 when a carrier gateway is UP on a node (its OPTIONS ping answered, or no ping).",
            ["node", "gateway"],
            registry=r,
        )
        self.gateway_repairs = Counter(
            "pbx_gateway_repairs_total",
            "Carrier gateways put back on a node after a change by hand (drift).",
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
            "xml_curl worker processes that exited (crash) or stopped answering (hang) "
            "while the daemon ran, and were replaced.",
            ["reason"],
            registry=r,
        )
        for reason in RESTART_REASONS:
            self.xmlcurl_worker_restarts.labels(reason)

    def _declare_cdr_metrics(self, r: CollectorRegistry) -> None:
        """Call records from the switches and the call history's retention."""
        self.cdr_records = Counter(
            "pbx_cdr_records_total",
            "Call records received, by what became of them "
            "(stored, duplicate, quarantined: no applied tenant's domain, refused: unreadable).",
            ["result"],
            registry=r,
        )
        self.calls_expired = Counter(
            "pbx_calls_expired_total",
            "Call legs deleted by a tenant's retention.",
            ["tenant"],
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
        """The in-process listener's observer: on the request path, list arithmetic only."""
        self.xmlcurl_counts.observe(section, result, seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _RecordingIndexCollector(Collector):
    """What the portal's recordings index holds in memory, read at scrape time."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        stats = self._metrics.recording_index()
        if stats is None:
            return
        for name, doc, value in (
            ("tenants", "Tenants whose recordings the portal holds in memory.", stats.tenants),
            ("held", "Recordings the portal holds in memory, over every tenant.", stats.recordings),
            ("indexing", "Tenants whose first walk is not over.", stats.indexing),
        ):
            yield GaugeMetricFamily(f"pbx_portal_recordings_{name}", doc, value=value)
        yield CounterMetricFamily(
            "pbx_portal_recordings_evicted",
            "Tenants dropped from memory after nobody read their recordings for a while.",
            value=stats.evicted,
        )


class _XmlCurlCollector(Collector):
    """The xml_curl families, summed over this process and its workers at scrape time."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        counts = WorkerCounts()
        counts.add(self._metrics.xmlcurl_counts)
        workers = self._metrics.worker_counts()
        if workers is not None:
            counts.add(workers)
        requests = CounterMetricFamily(
            "pbx_xmlcurl_requests",
            "mod_xml_curl requests by section and result.",
            labels=["section", "result"],
        )
        latency = HistogramMetricFamily(
            "pbx_xmlcurl_request_duration_seconds",
            "Time to answer a mod_xml_curl request.",
            labels=["section"],
        )
        for s, section in enumerate(SECTIONS):
            for r, result in enumerate(RESULTS):
                if counts.requests[s][r]:
                    requests.add_metric([section.value, result.value], counts.requests[s][r])
            if not any(counts.buckets[s]):
                continue
            cumulative, running = [], 0
            for bound, count in zip(
                (*XMLCURL_BUCKETS, float("inf")), counts.buckets[s], strict=True
            ):
                running += count
                cumulative.append((_bound(bound), float(running)))
            latency.add_metric([section.value], cumulative, sum_value=counts.seconds[s])
        yield requests
        yield latency


def _bound(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)
