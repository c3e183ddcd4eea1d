"""The reconcile loop: wait for triggers; the leader runs a pass, followers refresh; then
the snapshot is rebuilt and the switches are pushed when the applied state changed.

Failures, by branch of the error tree (``reconciler.core.errors``): a bad spec is contained
in the pass (its tenant is frozen), a failing tenant or platform apply too (recorded, the
others go on). A ``Permanent`` error that stops the whole pass (a migration error, a bad
setting, a template override that does not render) *stalls* the loop: status ``stalled``
with the error, no retry until its input may have changed (a spec file or git commit, SIGHUP,
another writer's apply, leadership, a database reconnection), never on the interval alone.
A ``Transient`` one (database down, specs unreadable) and a bug are retried after a
full-jitter backoff, never at once. An error that repeats is logged when it first appears
and when it clears, not on every attempt.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from reconciler.core.backoff import Backoff
from reconciler.core.errors import PbxError, Permanent
from reconciler.core.gcpause import freeze_survivors
from reconciler.core.logs import event
from reconciler.daemon.metrics import Metrics
from reconciler.daemon.snapshots import ServedSnapshot
from reconciler.daemon.status import StatusBoard
from reconciler.daemon.switches import SwitchLink
from reconciler.daemon.triggers import TriggerBatch, Triggers
from reconciler.reconcile import PassOutcome, Reconciler

log = logging.getLogger(__name__)

_CLOCK_MARGIN = 0.05  # a pass asked for at the end of a window starts after it, never before

SAME_INPUT = frozenset({"interval", "retry", "held", "unstable"})
"""Trigger reasons that bring no new input: a stalled loop does not pass for them alone."""


@dataclass
class _ErrorLog:
    """Logs an error once per distinct message (plus a line when it clears)."""

    last: str | None = None
    repeats: int = 0

    def failed(self, message: str, *, retry_in: float | None, bug: BaseException | None) -> None:
        """``retry_in`` None: a permanent error, not retried until its input changes."""
        if message == self.last:
            self.repeats += 1
            return
        self.last, self.repeats = message, 0
        if bug is not None:
            log.error("reconcile pass crashed; retrying", exc_info=bug)
        if retry_in is None:
            event(log, "reconcile pass stalled", logging.ERROR, error=message, retry="on new input")
            return
        event(
            log,
            "reconcile pass failed",
            logging.WARNING,
            error=message,
            retry_in=round(retry_in, 2),
        )

    def recovered(self) -> None:
        if self.last is not None:
            event(log, "reconcile pass recovered", repeated_failures=self.repeats + 1)
        self.last, self.repeats = None, 0


@dataclass(frozen=True)
class PassHooks:
    """What others need after a pass. ``leader_done(reconciler)`` runs in the pass's
    worker thread, under the store lock, after a leader pass that did not raise (the
    portal's revocation of people git no longer declares); ``settled()`` runs on the event
    loop after every attempt (the portal takes the new state)."""

    leader_done: Callable[[Reconciler], None] = lambda reconciler: None
    settled: Callable[[], None] = lambda: None


class PassLoop:
    def __init__(
        self,
        *,
        triggers: Triggers,
        snapshot: ServedSnapshot,
        live: SwitchLink,
        status: StatusBoard,
        metrics: Metrics,
        is_leader: Callable[[], bool],
        database_up: Callable[[], bool],
        retry: Backoff,
        hooks: PassHooks | None = None,
    ) -> None:
        self.hooks = hooks or PassHooks()
        self.triggers = triggers
        self.snapshot = snapshot
        self.live = live
        self.status = status
        self.metrics = metrics
        self._is_leader = is_leader
        self._database_up = database_up
        self._retry = retry
        self._errors = _ErrorLog()
        self.reconciler: Reconciler | None = None
        self.settle_seconds = 1.0
        self.lock = asyncio.Lock()  # one store user at a time (the store's connection)
        self.passes = 0
        self._done = asyncio.Condition()
        self.stalled: str | None = None
        """The ``Permanent`` error the loop waits out, None when it is not stalled."""

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            batch = await self.triggers.next()
            if stop.is_set():
                return
            if self.stalled is not None and batch.reasons <= SAME_INPUT:
                pass  # the same input fails the same way: wait for a new one
            elif self.reconciler is not None and self._database_up():
                await self._attempt(batch)
                self.hooks.settled()
            async with self._done:
                self.passes += 1
                self._done.notify_all()

    async def wait_passes(self, count: int, timeout: float) -> None:  # noqa: ASYNC109
        async with asyncio.timeout(timeout), self._done:
            await self._done.wait_for(lambda: self.passes >= count)

    async def _attempt(self, batch: TriggerBatch) -> None:
        reconciler = self.reconciler
        assert reconciler is not None
        started = time.perf_counter()
        leader = self._is_leader()
        try:
            # the lock also covers the snapshot's rebuild and save: shutdown waits for both
            async with self.lock:
                locked = time.perf_counter()
                if leader:
                    changed = await self._leader_pass(reconciler, batch)
                else:
                    changed = await self._follower_refresh(reconciler, batch)
                passed = time.perf_counter()
                rebuilt = changed or self.snapshot.stale
                if rebuilt:
                    await self.snapshot.rebuild(reconciler.applied)
                    # where save-to-served goes (bench/bench_save_to_served.py reads it)
                    event(log, "served after pass", trigger=batch.label,
                          wait_s=round(locked - started, 3), pass_s=round(passed - locked, 3),
                          serve_s=round(time.perf_counter() - passed, 3))  # fmt: skip
                if leader:  # after serving: nothing of it is on the save-to-served path
                    await asyncio.to_thread(self.hooks.leader_done, reconciler)
        except Exception as exc:
            self._failed(batch, exc, time.perf_counter() - started)
            return
        self._retry.reset()
        self._errors.recovered()
        self.stalled = None
        if rebuilt:
            await self.live.follow(reconciler.applied)
        if leader and (rebuilt or batch.full):  # a full pass is also every node's drift check
            await self.live.push(reconciler.applied)
        if batch.full:  # the whole state was (re)read: later passes must not walk it again
            await asyncio.to_thread(freeze_survivors)

    async def _leader_pass(self, reconciler: Reconciler, batch: TriggerBatch) -> bool:
        refreshed = False
        if batch.notified and not batch.full:
            # another writer applied (`pbx apply`, a rotation): only a real difference counts
            refreshed = await asyncio.to_thread(reconciler.refresh, batch.notified)
        outcome = await asyncio.to_thread(reconciler.run_pass, full=batch.full)
        self._observe(batch, outcome)
        self._look_again(reconciler, outcome)
        return outcome.state_changed or refreshed

    def _look_again(self, reconciler: Reconciler, outcome: PassOutcome) -> None:
        """Files caught changing are read again once they settled; a held shrink when its
        stable window has passed (not at the next interval)."""
        if outcome.planned.unstable:
            self.triggers.request_later("unstable", self.settle_seconds)
        if reconciler.shrink_wait is not None:
            self.triggers.request_later("held", reconciler.shrink_wait + _CLOCK_MARGIN)

    async def _follower_refresh(self, reconciler: Reconciler, batch: TriggerBatch) -> bool:
        if batch.full or self.snapshot.current is None:
            changed = await asyncio.to_thread(reconciler.bootstrap)
        elif batch.notified:
            changed = await asyncio.to_thread(reconciler.refresh, batch.notified)
        else:
            return False
        self.status.record_pass(batch.label, "follower refresh", 0.0)
        return changed

    def _observe(self, batch: TriggerBatch, outcome: PassOutcome) -> None:
        result = self.status.record_outcome(batch.label, outcome)
        m = self.metrics
        m.reconcile_duration.labels("full" if outcome.planned.full else "changed").observe(
            outcome.seconds
        )
        m.reconcile_total.labels(result).inc()
        for change in outcome.applied_changes().all_changes:
            m.changes_applied.labels(change.kind.value, change.action.verb).inc()
        for tenant_id in outcome.report.failed:
            m.tenant_apply_failures.labels(tenant_id).inc()
        m.invalid_tenants.set(len(outcome.planned.invalid))
        m.held_tenants.set(len(outcome.planned.held))
        m.spec_errors.set(len(outcome.planned.spec_errors))

    def _failed(self, batch: TriggerBatch, exc: Exception, seconds: float) -> None:
        assert self.reconciler is not None
        bug = None if isinstance(exc, PbxError) else exc
        message = str(exc) if isinstance(exc, PbxError) else repr(exc)
        self.reconciler.store.reset()  # a broken connection is reopened by the next attempt
        self.metrics.reconcile_total.labels("error").inc()
        if isinstance(exc, Permanent):
            self.stalled = message
            self._errors.failed(message, retry_in=None, bug=None)
            self.status.record_pass(batch.label, "stalled", seconds, error=message)
            return
        self.stalled = None
        delay = self._retry.next_delay()
        self._errors.failed(message, retry_in=delay, bug=bug)
        self.status.record_pass(batch.label, "error", seconds, error=message)
        self.triggers.retry_after(delay)
