"""The kopf side of the operator: which watch events start which reconciliation.

kopf watches LoanModels, DriftPolicies and the children loanops labels as its
own. Every event, and a periodic resync, asks the :class:`Controller` to
reconcile the owning object; the controller runs at most one pass per object
at a time, folds a burst of events into one more pass, and retries failures
with exponential backoff. kopf's change-detecting handlers are not used, so
kopf keeps no progress annotations and adds no finalizers: the status and the
cluster are the only state.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import kopf

from loanops.operator.driftpolicies import DriftPolicyReconciler
from loanops.operator.kube import DRIFTPOLICY, LOANMODEL, Kind, Kube
from loanops.operator.loanmodels import LoanModelReconciler
from loanops.operator.metrics import OperatorMetrics
from loanops.operator.registry import ModelRegistry
from loanops.operator.resources import (
    DRIFTPOLICIES,
    DRIFTPOLICY_LABEL,
    GROUP,
    LOANMODEL_LABEL,
    LOANMODELS,
    MANAGED_BY,
    VERSION,
)
from loanops.operator.settings import OperatorSettings

logger = logging.getLogger(__name__)

Key = tuple[str, str, str]  # kind, namespace, name


@dataclass
class Backoff:
    """Consecutive failures of one object and when it may be tried again."""

    failures: int = 0
    not_before: float = 0.0


class Controller:
    """Serialises, coalesces and retries reconciliations per object."""

    def __init__(
        self,
        settings: OperatorSettings,
        kube: Kube,
        registry: ModelRegistry | None = None,
        metrics: OperatorMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.kube = kube
        self.metrics = metrics if metrics is not None else OperatorMetrics()
        registry = registry if registry is not None else ModelRegistry()
        self.loanmodels = LoanModelReconciler(kube, registry, settings, self.metrics)
        self.driftpolicies = DriftPolicyReconciler(kube, settings, self.metrics, self)
        self._kinds: dict[str, tuple[Kind, Callable[[dict[str, Any]], Awaitable[Any]]]] = {
            "LoanModel": (LOANMODEL, self.loanmodels.reconcile),
            "DriftPolicy": (DRIFTPOLICY, self.driftpolicies.reconcile),
        }
        self._locks: dict[Key, asyncio.Lock] = {}
        self._queued: set[Key] = set()
        self._known: set[Key] = set()
        self._backoff: dict[Key, Backoff] = {}
        self._timers: dict[Key, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def remember(self, kind: str, namespace: str, name: str) -> None:
        """Include an object in the periodic resync."""
        self._known.add((kind, namespace, name))

    def forget(self, kind: str, namespace: str, name: str) -> None:
        """Drop a deleted object from the resync and from the backoff table."""
        key = (kind, namespace, name)
        self._known.discard(key)
        self._backoff.pop(key, None)
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()

    def request(self, kind: str, namespace: str, name: str) -> None:
        """Ask for a pass soon, without waiting for it."""
        if (kind, namespace, name) in self._queued:
            return
        task = asyncio.get_running_loop().create_task(self.reconcile(kind, namespace, name))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def reconcile(self, kind: str, namespace: str, name: str, *, retry: bool = False) -> None:
        """Run one pass for the object unless one is already waiting to run."""
        key = (kind, namespace, name)
        backoff = self._backoff.get(key)
        if backoff is not None and not retry and time.monotonic() < backoff.not_before:
            return  # the scheduled retry will come; events meanwhile change nothing
        if key in self._queued:
            return  # a pass that has not started yet will see this change too
        self._queued.add(key)
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            self._queued.discard(key)
            await self._run(key)

    async def _run(self, key: Key) -> None:
        kind, namespace, name = key
        resource, reconciler = self._kinds[kind]
        try:
            body = await self.kube.get(resource, namespace, name)
            if body is None:
                self.forget(*key)
                return
            if body["metadata"].get("deletionTimestamp"):
                return  # children go with it through their ownerReferences
            self.remember(*key)
            await reconciler(body)
        except Exception as error:  # every failure is counted, logged and retried
            self.metrics.reconciliations.labels(kind, "error").inc()
            self.metrics.handler_errors.labels(kind, type(error).__name__).inc()
            delay = self._schedule_retry(key)
            logger.warning(
                "%s %s/%s: reconciliation failed (%s: %s); retrying in %.0f s.",
                kind,
                namespace,
                name,
                type(error).__name__,
                error,
                delay,
                exc_info=not isinstance(error, (ConnectionError, TimeoutError))
                and logger.isEnabledFor(logging.DEBUG),
            )
            return
        self.metrics.reconciliations.labels(kind, "ok").inc()
        self._backoff.pop(key, None)

    def _schedule_retry(self, key: Key) -> float:
        backoff = self._backoff.setdefault(key, Backoff())
        backoff.failures += 1
        delay = float(
            min(
                self.settings.retry_max_seconds,
                self.settings.retry_base_seconds * 2 ** (backoff.failures - 1),
            )
        )
        backoff.not_before = time.monotonic() + delay
        loop = asyncio.get_running_loop()
        old = self._timers.pop(key, None)
        if old is not None:
            old.cancel()

        def fire() -> None:
            self._timers.pop(key, None)
            task = loop.create_task(self.reconcile(*key, retry=True))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        self._timers[key] = loop.call_later(delay, fire)
        return delay

    async def resync_forever(self) -> None:
        """Reconcile every known object every ``resync_seconds``."""
        while True:
            await asyncio.sleep(self.settings.resync_seconds)
            for key in sorted(self._known):
                await self.reconcile(*key)


def build_registry(controller: Controller) -> kopf.OperatorRegistry:
    """The kopf handlers of the operator, bound to ``controller``."""
    registry = kopf.OperatorRegistry()
    managed = {**MANAGED_BY}
    resync: list[asyncio.Task[None]] = []

    @kopf.on.startup(registry=registry)
    async def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        # Handler log lines stay logs; the operator posts its own Events.
        settings.posting.enabled = False
        settings.watching.server_timeout = 300
        settings.watching.client_timeout = 330
        # MLflow's client takes seconds to import; pay for it before the first
        # LoanModel, not in the middle of its first pass.
        await asyncio.to_thread(controller.loanmodels.registry.warm_up)
        resync.append(asyncio.get_running_loop().create_task(controller.resync_forever()))
        if controller.settings.metrics_port:
            controller.metrics.serve(controller.settings.metrics_port)
        logger.info("loanops operator started; metrics on :%s.", controller.settings.metrics_port)

    @kopf.on.cleanup(registry=registry)
    async def stop(**_: Any) -> None:
        for task in resync:
            task.cancel()

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        # The same configuration as the operator's own client (kubeconfig or
        # in-cluster), so kopf and the reconcilers see the same API server.
        return kopf.login_via_client(**kwargs)

    def on_owner(kind: str) -> Callable[..., Awaitable[None]]:
        async def handler(event: dict[str, Any], namespace: str, name: str, **_: Any) -> None:
            if event.get("type") == "DELETED":
                controller.forget(kind, namespace, name)
                return
            controller.remember(kind, namespace, name)
            # Queued, not awaited: kopf's per-object handler returns at once
            # and a burst of events folds into one pending pass.
            controller.request(kind, namespace, name)

        return handler

    kopf.on.event(GROUP, VERSION, LOANMODELS, registry=registry, id="loanmodel")(
        on_owner("LoanModel")
    )
    kopf.on.event(GROUP, VERSION, DRIFTPOLICIES, registry=registry, id="driftpolicy")(
        on_owner("DriftPolicy")
    )

    async def on_child(labels: Mapping[str, str], namespace: str | None, **_: Any) -> None:
        if namespace is None:
            return
        if DRIFTPOLICY_LABEL in labels:
            controller.request("DriftPolicy", namespace, labels[DRIFTPOLICY_LABEL])
        elif LOANMODEL_LABEL in labels:
            controller.request("LoanModel", namespace, labels[LOANMODEL_LABEL])

    for group, version, plural in (
        ("batch", "v1", "jobs"),
        ("batch", "v1", "cronjobs"),
        ("apps", "v1", "deployments"),
    ):
        kopf.on.event(
            group, version, plural, labels=managed, registry=registry, id=f"child-{plural}"
        )(on_child)
    return registry
