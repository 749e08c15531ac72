"""Fixtures for operator tests: a Kubernetes API (kmock), real MLflow versions,
and the operator itself running in-process under kopf.

kmock's emulator stores objects and serves list, watch, get, create, patch and
delete, but runs no controllers. :class:`Cluster` plays the parts a cluster
would: it stamps uids, generations and creation times as the API server does,
finishes Jobs the way the Job controller reports them (a Pod whose terminated
container carries the termination message, then the Job's conditions), and
completes Deployment rollouts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import kmock
import kopf
import kubernetes
import numpy as np
import pandas as pd
import pytest
import pytest_asyncio
import yaml
from mlflow.tracking import MlflowClient

from loanops.operator.conditions import now_iso
from loanops.operator.handlers import Controller, build_registry
from loanops.operator.kube import (
    DEPLOYMENT,
    DRIFTPOLICY,
    JOB,
    LOANMODEL,
    Kind,
    Kube,
    load_configuration,
)
from loanops.operator.metrics import OperatorMetrics
from loanops.operator.resources import API_VERSION
from loanops.operator.settings import OperatorSettings
from loanops.trainer.training import TrainingOutcome, train
from tests.conftest import small_config

NAMESPACE = "lending"
RESOURCES = {
    "v1/namespaces": ("Namespace", False, []),
    "apiextensions.k8s.io/v1/customresourcedefinitions": ("CustomResourceDefinition", False, []),
    "v1/events": ("Event", True, []),
    "events.k8s.io/v1/events": ("Event", True, []),
    "loanops.io/v1alpha1/loanmodels": ("LoanModel", True, ["status"]),
    "loanops.io/v1alpha1/driftpolicies": ("DriftPolicy", True, ["status"]),
    "batch/v1/jobs": ("Job", True, ["status"]),
    "batch/v1/cronjobs": ("CronJob", True, ["status"]),
    "apps/v1/deployments": ("Deployment", True, ["status"]),
    "v1/services": ("Service", True, ["status"]),
    "v1/pods": ("Pod", True, ["status"]),
}
VERBS = ["list", "watch", "get", "create", "patch", "update", "delete"]


@pytest.fixture(scope="session")
def source_versions(
    mlflow_server: str, synthetic_csv: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, TrainingOutcome]:
    """Two versions trained by the real trainer: a good one and a clearly worse one.

    The worse one learns from labels of which a third are flipped at random, so
    its evaluation metrics are lower by a wide margin.
    """
    frame = pd.read_csv(synthetic_csv)
    rng = np.random.default_rng(5)
    flip = rng.random(len(frame)) < 0.35
    frame.loc[flip, "loan_status"] = 1 - frame.loc[flip, "loan_status"]
    noisy = tmp_path_factory.mktemp("noisy") / "applications.csv"
    frame.to_csv(noisy, index=False)
    good = train(small_config(str(synthetic_csv), "operator-source", tracking_uri=mlflow_server))
    worse = train(small_config(str(noisy), "operator-source", tracking_uri=mlflow_server))
    assert good.metrics["eval_roc_auc"] > worse.metrics["eval_roc_auc"] + 0.05
    return {"good": good, "worse": worse}


class Registry:
    """Copies of the source versions under a fresh registered model per test."""

    def __init__(self, tracking_uri: str, sources: dict[str, TrainingOutcome], name: str) -> None:
        self.client = MlflowClient(tracking_uri=tracking_uri)
        self.tracking_uri = tracking_uri
        self.sources = sources
        self.name = name
        self.client.create_registered_model(name)

    def register(self, which: str) -> TrainingOutcome:
        """Register a copy of a source version; the outcome a Job would report."""
        source = self.sources[which]
        copied = self.client.copy_model_version(
            f"models:/{source.model_name}/{source.version}", self.name
        )
        return replace(source, model_name=self.name, version=str(copied.version))

    def champion(self) -> str | None:
        try:
            return str(self.client.get_model_version_by_alias(self.name, "champion").version)
        except Exception:
            return None

    def tags(self, version: str) -> dict[str, str]:
        return dict(self.client.get_model_version(self.name, version).tags)


@pytest.fixture
def registry(
    mlflow_server: str, source_versions: dict[str, TrainingOutcome], request: pytest.FixtureRequest
) -> Registry:
    name = f"lm-{request.node.name[:40]}-{uuid.uuid4().hex[:6]}".replace("[", "-").replace("]", "")
    return Registry(mlflow_server, source_versions, name)


class Cluster:
    """The test's hands on the API: what users and cluster controllers would do."""

    def __init__(self, kube: Kube, emulator: Any) -> None:
        self.kube = kube
        self.emulator = emulator

    # -- what users do ------------------------------------------------------------------------

    async def apply(
        self, kind: str, name: str, spec: dict[str, Any], **meta: Any
    ) -> dict[str, Any]:
        body = {
            "apiVersion": API_VERSION,
            "kind": kind,
            "metadata": {
                "name": name,
                "namespace": NAMESPACE,
                # What the API server would stamp on creation.
                "uid": str(uuid.uuid4()),
                "generation": 1,
                "creationTimestamp": now_iso(),
                "resourceVersion": "1",
                **meta,
            },
            "spec": spec,
        }
        created, _ = await self.kube.create(body)
        return created

    async def change_spec(self, kind: Kind, name: str, spec: dict[str, Any]) -> None:
        current = await self.get(kind, name)
        generation = int(current["metadata"].get("generation", 1)) + 1
        # What `kubectl apply` would send: removed fields are set to null.
        replacement = _replacing(current.get("spec") or {}, spec)
        await self.kube.patch(
            kind, NAMESPACE, name, {"metadata": {"generation": generation}, "spec": replacement}
        )

    async def annotate(self, kind: Kind, name: str, key: str, value: str) -> None:
        await self.kube.patch(kind, NAMESPACE, name, {"metadata": {"annotations": {key: value}}})

    async def get(self, kind: Kind, name: str) -> dict[str, Any]:
        found = await self.kube.get(kind, NAMESPACE, name)
        assert found is not None, f"{kind.plural}/{name} does not exist"
        return found

    def stored(self, kind: Kind, name: str) -> Any:
        """The emulator's stored object, to change behind the API's back."""
        resource = kmock.resource(kind.prefix.split("/", 2)[-1] + "/" + kind.plural)
        return self.emulator.objects[resource, NAMESPACE, name]

    async def find(self, kind: Kind, name: str) -> dict[str, Any] | None:
        return await self.kube.get(kind, NAMESPACE, name)

    async def list(self, kind: Kind, **labels: str) -> list[dict[str, Any]]:
        return await self.kube.list(kind, NAMESPACE, labels or None)

    async def jobs(self, owner: str) -> list[dict[str, Any]]:
        labels = {"loanops.io/loanmodel": owner, "app.kubernetes.io/name": "loanops-trainer"}
        return await self.kube.list(JOB, NAMESPACE, labels)

    async def events(self, reason: str | None = None) -> list[dict[str, Any]]:
        items = (await self.kube.call("GET", f"/api/v1/namespaces/{NAMESPACE}/events"))["items"]
        return [e for e in items if reason is None or e["reason"] == reason]

    async def wait_for(
        self,
        probe: Callable[[], Awaitable[Any]],
        what: str,
        timeout: float = 20.0,
    ) -> Any:
        """Poll ``probe`` until it returns something truthy."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            with contextlib.suppress(AssertionError):
                last = await probe()
                if last:
                    return last
            await asyncio.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}; last seen: {last!r}")

    async def condition(self, name: str, kind: str) -> dict[str, Any] | None:
        body = await self.get(LOANMODEL, name)
        for condition in (body.get("status") or {}).get("conditions") or []:
            if condition["type"] == kind:
                return dict(condition)
        return None

    async def wait_condition(
        self, name: str, kind: str, status: str, reason: str | None = None, **options: Any
    ) -> dict[str, Any]:
        async def probe() -> dict[str, Any] | None:
            condition = await self.condition(name, kind)
            matches = condition is not None and condition["status"] == status
            if matches and (reason is None or condition["reason"] == reason):  # type: ignore[index]
                return condition
            return None

        result: dict[str, Any] = await self.wait_for(
            probe, f"{kind}={status} {reason or ''} on {name}", **options
        )
        return result

    # -- what the cluster's controllers do ----------------------------------------------------

    async def finish_job(
        self,
        job: dict[str, Any],
        *,
        succeeded: bool,
        message: str,
        container: str = "trainer",
    ) -> None:
        """Report a Job's end the way the Job controller and kubelet do."""
        name = job["metadata"]["name"]
        stamp = now_iso()
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"{name}-{uuid.uuid4().hex[:5]}",
                "namespace": NAMESPACE,
                "labels": {"job-name": name, "batch.kubernetes.io/job-name": name},
            },
            "spec": job["spec"]["template"]["spec"],
            "status": {
                "phase": "Succeeded" if succeeded else "Failed",
                "containerStatuses": [
                    {
                        "name": container,
                        "ready": False,
                        "restartCount": 0,
                        "state": {
                            "terminated": {
                                "exitCode": 0 if succeeded else 2,
                                "reason": "Completed" if succeeded else "Error",
                                "message": message,
                                "finishedAt": stamp,
                            }
                        },
                    }
                ],
            },
        }
        await self.kube.create(pod)
        if succeeded:
            conditions = [
                {"type": "SuccessCriteriaMet", "status": "True", "lastTransitionTime": stamp},
                {"type": "Complete", "status": "True", "lastTransitionTime": stamp},
            ]
            status = {"succeeded": 1, "completionTime": stamp, "conditions": conditions}
        else:
            conditions = [
                {
                    "type": "Failed",
                    "status": "True",
                    "reason": "BackoffLimitExceeded",
                    "message": "Job has reached the specified backoff limit",
                    "lastTransitionTime": stamp,
                }
            ]
            status = {"failed": 1, "conditions": conditions}
        status["startTime"] = job["metadata"].get("creationTimestamp") or stamp
        await self.kube.patch(JOB, NAMESPACE, name, {"status": status}, subresource="status")

    async def complete_rollout(self, name: str) -> dict[str, Any]:
        """Every replica updated and available, as the Deployment controller reports."""
        deployment = await self.get(DEPLOYMENT, name)
        generation = int(deployment["metadata"].get("generation") or 1) + 1
        replicas = int(deployment["spec"]["replicas"])
        await self.kube.patch(DEPLOYMENT, NAMESPACE, name, {"metadata": {"generation": generation}})
        status = {
            "observedGeneration": generation,
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": replicas,
            "availableReplicas": replicas,
        }
        return await self.kube.patch(
            DEPLOYMENT, NAMESPACE, name, {"status": status}, subresource="status"
        )


def _replacing(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """A merge patch turning ``old`` into ``new``."""
    patch: dict[str, Any] = {}
    for key in old.keys() - new.keys():
        patch[key] = None
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(old.get(key), dict):
            patch[key] = _replacing(old[key], value)
        else:
            patch[key] = value
    return patch


def loanmodel_spec(registry: Registry, **sections: dict[str, Any]) -> dict[str, Any]:
    """A LoanModel spec for ``registry``'s model, with sections overridden."""
    spec: dict[str, Any] = {
        "data": {"uri": "s3://lending-data/applications/"},
        "mlflow": {"trackingUri": registry.tracking_uri, "modelName": registry.name},
        "training": {"families": ["xgboost"], "maxEvals": 5},
        "serving": {"replicas": 2},
    }
    spec.update(sections)
    return spec


@pytest.fixture
def kubeconfig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kmock: Any) -> Path:
    """A kubeconfig pointing at the emulator, used by kopf and by the operator alike."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kmock", "cluster": {"server": str(kmock.url).rstrip("/")}}],
        "users": [{"name": "tester", "user": {"token": "test-token"}}],
        "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "tester"}}],
        "current-context": "kmock",
    }
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    monkeypatch.setenv("KUBECONFIG", str(path))
    # The client reads $KUBECONFIG once, at import; kopf's login asks it later.
    monkeypatch.setattr(kubernetes.config.kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(path))
    # Not inside a pod: kopf and the operator must fall back to the kubeconfig.
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    for resource, (kind, namespaced, subresources) in RESOURCES.items():
        kmock.resources[resource] = kmock.ResourceInfo(
            kind=kind, namespaced=namespaced, verbs=VERBS, subresources=subresources
        )
    return path


@pytest.fixture
def operator_settings() -> OperatorSettings:
    return OperatorSettings(
        trainer_image="registry.example/loanops-trainer:test",
        server_image="registry.example/loanops-server:test",
        resync_seconds=1.0,
        retry_base_seconds=0.5,
        retry_max_seconds=2.0,
        metrics_port=0,
    )


class RunningOperator:
    """The operator running in this event loop; stoppable and restartable."""

    def __init__(self, settings: OperatorSettings) -> None:
        self.settings = settings
        self.task: asyncio.Task[None] | None = None
        self.stop_flag: asyncio.Event | None = None
        self.controller: Controller | None = None
        self.metrics = OperatorMetrics()

    async def start(self) -> Controller:
        load_configuration()
        self.controller = Controller(self.settings, Kube(), metrics=self.metrics)
        self.stop_flag = asyncio.Event()
        registry = build_registry(self.controller)

        @kopf.on.startup(registry=registry)
        def stop_quickly(settings: kopf.OperatorSettings, **_: Any) -> None:
            # Per-object workers linger for seconds after the last event by
            # default; a test's operator stops as soon as it is told to.
            settings.batching.idle_timeout = 0.5
            settings.batching.exit_timeout = 0.5

        self.task = asyncio.get_running_loop().create_task(
            kopf.operator(
                registry=registry,
                standalone=True,
                clusterwide=True,
                stop_flag=self.stop_flag,
            )
        )
        return self.controller

    async def stop(self) -> None:
        if self.task is None or self.stop_flag is None:
            return
        self.stop_flag.set()
        # kopf gives every task started after its own startup 5 s to finish;
        # here those include the emulator's watch streams, which never do. A
        # cancellation after a short grace ends them at once.
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(self.task, timeout=1.0)
        self.task = None


@pytest_asyncio.fixture
async def operator(
    kubeconfig: Path, operator_settings: OperatorSettings
) -> AsyncIterator[RunningOperator]:
    running = RunningOperator(operator_settings)
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


@pytest_asyncio.fixture
async def cluster(kubeconfig: Path, kmock: Any) -> Cluster:
    load_configuration()
    # Short: a request the emulator leaves hanging is retried soon by the client.
    return Cluster(Kube(request_timeout=3.0), kmock)


def outcome_message(outcome: TrainingOutcome) -> str:
    """The termination message ``loanops train --outcome-file`` writes."""
    return outcome.to_json()


@pytest.fixture(scope="session")
def crds() -> Iterator[dict[str, dict[str, Any]]]:
    root = Path(__file__).resolve().parents[2] / "crds"
    return {
        doc["spec"]["names"]["kind"]: doc
        for path in sorted(root.glob("*.yaml"))
        for doc in [yaml.safe_load(path.read_text())]
    }


__all__ = [
    "DEPLOYMENT",
    "DRIFTPOLICY",
    "JOB",
    "LOANMODEL",
    "NAMESPACE",
    "Cluster",
    "Registry",
    "json",
    "loanmodel_spec",
    "outcome_message",
]
