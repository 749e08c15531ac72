"""LoanModel scenarios: the operator under kopf, kmock as the API, MLflow for real."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from loanops.operator.children import MODEL_VERSION_LABEL, TEMPLATE_HASH
from loanops.operator.resources import APPROVE_ANNOTATION, RETRAIN_ANNOTATION
from loanops.trainer.training import TrainingOutcome
from tests.conftest import free_port
from tests.operator.conftest import (
    DEPLOYMENT,
    JOB,
    LOANMODEL,
    Cluster,
    Registry,
    RunningOperator,
    loanmodel_spec,
    outcome_message,
)

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(120)]
SERVER = "credit-server"


async def one_job(cluster: Cluster, owner: str, count: int = 1) -> dict[str, Any]:
    """Wait until ``owner`` has ``count`` training Jobs; return the newest."""

    async def probe() -> list[dict[str, Any]] | None:
        jobs = await cluster.jobs(owner)
        return jobs if len(jobs) == count else None

    jobs = await cluster.wait_for(probe, f"{count} Job(s) of {owner}")
    newest: dict[str, Any] = jobs[-1]
    return newest


async def served_version(cluster: Cluster, owner: str) -> str | None:
    deployment = await cluster.find(DEPLOYMENT, f"{owner}-server")
    if deployment is None:
        return None
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    model = args[args.index("--model") + 1]
    return str(model.rsplit("/", 1)[-1])


async def finish_training(
    cluster: Cluster, registry: Registry, job: dict[str, Any], which: str
) -> TrainingOutcome:
    """Register a ``which`` version and succeed ``job`` with its outcome; return it."""
    outcome = registry.register(which)
    await cluster.finish_job(job, succeeded=True, message=outcome_message(outcome))
    return outcome


async def train_to_ready(cluster: Cluster, registry: Registry, owner: str, which: str) -> str:
    """Finish the pending Job with a registered ``which`` version; wait for Ready."""
    job = await one_job(cluster, owner, count=len(await cluster.jobs(owner)) or 1)
    outcome = await finish_training(cluster, registry, job, which)

    async def deployed() -> bool:
        return await served_version(cluster, owner) == outcome.version

    await cluster.wait_for(deployed, f"Deployment of version {outcome.version}")
    await cluster.complete_rollout(f"{owner}-server")
    await cluster.wait_condition(owner, "Ready", "True")
    return outcome.version


async def test_first_training_is_promoted_and_served(
    operator: RunningOperator, cluster: Cluster, registry: Registry
) -> None:
    await cluster.apply("LoanModel", "credit", loanmodel_spec(registry))

    job = await one_job(cluster, "credit")
    meta, spec = job["metadata"], job["spec"]
    assert meta["name"].startswith("credit-train-")
    assert meta["ownerReferences"][0]["kind"] == "LoanModel"
    assert meta["ownerReferences"][0]["controller"] is True
    assert spec["backoffLimit"] == 1
    assert spec["activeDeadlineSeconds"] == 7200
    assert spec["ttlSecondsAfterFinished"] > 0
    pod = spec["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    container = pod["containers"][0]
    assert container["image"] == "registry.example/loanops-trainer:test"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["args"][:3] == ["train", "--data", "s3://lending-data/applications/"]
    assert "--outcome-file" in container["args"]
    await cluster.wait_condition("credit", "Trained", "False", "TrainingRunning")
    assert (await cluster.get(LOANMODEL, "credit"))["status"]["phase"] == "Training"

    outcome = await finish_training(cluster, registry, job, "good")

    async def deployed() -> dict[str, Any] | None:
        return await cluster.find(DEPLOYMENT, "credit-server")

    deployment = await cluster.wait_for(deployed, "the server Deployment")
    template = deployment["spec"]["template"]
    server = template["spec"]["containers"][0]
    assert server["args"][:3] == ["serve", "--model", f"models:/{registry.name}/1"]
    assert template["metadata"]["labels"][MODEL_VERSION_LABEL] == "1"
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert server["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert server["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert server["securityContext"]["readOnlyRootFilesystem"] is True
    assert {m["mountPath"] for m in server["volumeMounts"]} >= {"/tmp", "/var/spool/loanops"}
    await cluster.wait_condition("credit", "Serving", "False", "Rolling")
    assert (await cluster.get(LOANMODEL, "credit"))["status"]["phase"] == "Rolling"

    await cluster.complete_rollout("credit-server")
    ready = await cluster.wait_condition("credit", "Ready", "True", "Ready")
    assert "version 1 on 2/2 replicas" in ready["message"]

    status = (await cluster.get(LOANMODEL, "credit"))["status"]
    assert status["phase"] == "Ready"
    assert status["observedGeneration"] == 1
    assert status["champion"]["version"] == "1"
    assert status["champion"]["score"] == pytest.approx(outcome.metrics["eval_roc_auc"])
    assert status["challenger"]["decision"] == "Promoted"
    assert status["lastTraining"]["outcome"] == "Succeeded"
    assert status["serving"]["endpoint"] == "http://credit-server.lending.svc:80"
    assert status["history"][0]["version"] == "1"
    assert registry.champion() == "1"
    assert registry.tags("1")["loanops.promotion.decision"] == "promote"
    assert await cluster.find(JOB, job["metadata"]["name"]) is not None
    reasons = {event["reason"] for event in await cluster.events()}
    assert {"TrainingStarted", "TrainingSucceeded", "Promoted", "Rolled"} <= reasons
    assert operator.metrics.trainings.labels("succeeded")._value.get() == 1


async def test_a_worse_challenger_is_not_promoted(
    operator: RunningOperator, cluster: Cluster, registry: Registry
) -> None:
    await cluster.apply("LoanModel", "credit", loanmodel_spec(registry))
    await train_to_ready(cluster, registry, "credit", "good")
    ready_since = (await cluster.condition("credit", "Ready") or {})["lastTransitionTime"]
    deployment = await cluster.get(DEPLOYMENT, "credit-server")

    await cluster.annotate(LOANMODEL, "credit", RETRAIN_ANNOTATION, "2026-12-04T10:00:00Z")
    job = await one_job(cluster, "credit", count=2)
    assert job["metadata"]["annotations"]["loanops.io/request-reason"] == "RetrainRequested"
    worse = await finish_training(cluster, registry, job, "worse")

    rejected = await cluster.wait_condition("credit", "Promoted", "False", "PromotionRejected")
    assert "does not beat champion v1" in rejected["message"]
    status = (await cluster.get(LOANMODEL, "credit"))["status"]
    assert status["challenger"]["version"] == worse.version
    assert status["challenger"]["decision"] == "Rejected"
    assert "does not beat" in status["challenger"]["reason"]
    assert status["champion"]["version"] == "1"
    assert registry.champion() == "1"
    assert registry.tags(worse.version)["loanops.promotion.decision"] == "reject"
    after = await cluster.get(DEPLOYMENT, "credit-server")
    assert after["spec"] == deployment["spec"]
    ready = await cluster.condition("credit", "Ready")
    assert ready is not None
    assert ready["status"] == "True"
    assert ready["lastTransitionTime"] == ready_since
    assert [e["reason"] for e in await cluster.events("PromotionRejected")]


async def test_a_failed_job_is_reported_and_not_retried_until_asked(
    operator: RunningOperator, cluster: Cluster, registry: Registry
) -> None:
    await cluster.apply("LoanModel", "credit", loanmodel_spec(registry))
    job = await one_job(cluster, "credit")
    crash = "Traceback...\nDataSourceError: s3://lending-data/applications/ does not exist"
    await cluster.finish_job(job, succeeded=False, message=crash)

    failed = await cluster.wait_condition("credit", "Trained", "False", "TrainingFailed")
    assert "BackoffLimitExceeded" in failed["message"]
    assert "does not exist" in failed["message"]
    status = (await cluster.get(LOANMODEL, "credit"))["status"]
    assert status["phase"] == "Failed"
    assert status["lastTraining"]["outcome"] == "Failed"
    ready = await cluster.condition("credit", "Ready")
    assert ready is not None
    assert ready["reason"] == "TrainingFailed"
    warnings = await cluster.events("TrainingFailed")
    assert len(warnings) == 1
    assert warnings[0]["type"] == "Warning"

    # Several resync passes later, still one Job and one Event: no hot loop.
    await asyncio.sleep(3 * operator.settings.resync_seconds + 0.5)
    assert len(await cluster.jobs("credit")) == 1
    assert len(await cluster.events("TrainingFailed")) == 1
    assert operator.metrics.training_failing.labels("lending", "credit")._value.get() == 1

    await cluster.annotate(LOANMODEL, "credit", RETRAIN_ANNOTATION, "try-again")
    second = await one_job(cluster, "credit", count=2)
    assert second["metadata"]["name"] != job["metadata"]["name"]


async def test_manual_mode_waits_for_approval(
    operator: RunningOperator, cluster: Cluster, registry: Registry
) -> None:
    spec = loanmodel_spec(registry, promotion={"mode": "Manual"})
    await cluster.apply("LoanModel", "credit", spec)
    job = await one_job(cluster, "credit")
    await finish_training(cluster, registry, job, "good")

    waiting = await cluster.wait_condition("credit", "Promoted", "False", "AwaitingApproval")
    assert f"{APPROVE_ANNOTATION}=1" in waiting["message"]
    assert (await cluster.get(LOANMODEL, "credit"))["status"]["phase"] == "AwaitingApproval"
    await asyncio.sleep(2 * operator.settings.resync_seconds)
    assert registry.champion() is None
    assert await cluster.find(DEPLOYMENT, "credit-server") is None
    assert registry.tags("1")["loanops.promotion.decision"] == "awaiting-approval"

    await cluster.annotate(LOANMODEL, "credit", APPROVE_ANNOTATION, "1")
    await cluster.wait_condition("credit", "Promoted", "True", "Promoted")
    assert registry.champion() == "1"

    async def deployed() -> bool:
        return await served_version(cluster, "credit") == "1"

    await cluster.wait_for(deployed, "the approved version deployed")


async def test_dry_run_records_the_decision_only(
    operator: RunningOperator, cluster: Cluster, registry: Registry
) -> None:
    spec = loanmodel_spec(registry, promotion={"mode": "DryRun"})
    await cluster.apply("LoanModel", "credit", spec)
    job = await one_job(cluster, "credit")
    await finish_training(cluster, registry, job, "good")

    dry = await cluster.wait_condition("credit", "Promoted", "False", "DryRun")
    assert "would be promoted" in dry["message"]
    status = (await cluster.get(LOANMODEL, "credit"))["status"]
    assert status["challenger"]["decision"] == "DryRunPromote"
    assert registry.champion() is None
    assert registry.tags("1")["loanops.promotion.decision"] == "dry-run-promote"
    await asyncio.sleep(2 * operator.settings.resync_seconds)
    assert await cluster.find(DEPLOYMENT, "credit-server") is None
    serving = await cluster.condition("credit", "Serving")
    assert serving is not None
    assert serving["reason"] == "NoChampion"


async def test_pinned_version_rolls_back_and_unpinning_follows_the_champion(
    operator: RunningOperator, cluster: Cluster, registry: Registry
) -> None:
    spec = loanmodel_spec(registry)
    await cluster.apply("LoanModel", "credit", spec)
    await train_to_ready(cluster, registry, "credit", "worse")
    await cluster.annotate(LOANMODEL, "credit", RETRAIN_ANNOTATION, "better-data")
    await one_job(cluster, "credit", count=2)
    assert await train_to_ready(cluster, registry, "credit", "good") == "2"
    assert registry.champion() == "2"

    pinned = {**spec, "serving": {"replicas": 2, "pinnedVersion": "1"}}
    await cluster.change_spec(LOANMODEL, "credit", pinned)

    async def rolled_to(version: str) -> Any:
        async def probe() -> bool:
            return await served_version(cluster, "credit") == version

        return await cluster.wait_for(probe, f"the Deployment at version {version}")

    await rolled_to("1")
    await cluster.complete_rollout("credit-server")
    ready = await cluster.wait_condition("credit", "Ready", "True")
    assert ready["message"].startswith("Pinned version 1")
    status = (await cluster.get(LOANMODEL, "credit"))["status"]
    assert status["serving"]["pinned"] is True
    assert status["observedGeneration"] == 2
    assert status["champion"]["version"] == "2"
    # A pin is no reason to train again.
    assert len(await cluster.jobs("credit")) == 2

    missing = {**spec, "serving": {"replicas": 2, "pinnedVersion": "99"}}
    await cluster.change_spec(LOANMODEL, "credit", missing)
    gone = await cluster.wait_condition("credit", "Serving", "False", "PinnedVersionNotFound")
    assert "99" in gone["message"]
    assert await served_version(cluster, "credit") == "1"

    await cluster.change_spec(LOANMODEL, "credit", spec)
    await rolled_to("2")
    rolled = [e["message"] for e in await cluster.events("Rolled")]
    assert any("to version 1" in message for message in rolled)


async def test_an_operator_restart_mid_training_never_creates_a_second_job(
    operator: RunningOperator, cluster: Cluster, registry: Registry
) -> None:
    await cluster.apply("LoanModel", "credit", loanmodel_spec(registry))
    job = await one_job(cluster, "credit")
    await operator.stop()

    # The worst case: the last status write was lost with the old process
    # (edited in the emulator's store: nobody is watching to be told).
    cluster.stored(LOANMODEL, "credit").patch({"status": {"lastTraining": None}})
    await operator.start()
    await cluster.wait_condition("credit", "Trained", "False", "TrainingRunning")
    await asyncio.sleep(3 * operator.settings.resync_seconds)
    jobs = await cluster.jobs("credit")
    assert [j["metadata"]["name"] for j in jobs] == [job["metadata"]["name"]]
    assert len(await cluster.events("TrainingStarted")) == 1

    await finish_training(cluster, registry, job, "good")
    await cluster.wait_condition("credit", "Promoted", "True")


async def test_a_deleted_deployment_is_recreated(
    operator: RunningOperator, cluster: Cluster, registry: Registry
) -> None:
    await cluster.apply("LoanModel", "credit", loanmodel_spec(registry))
    await train_to_ready(cluster, registry, "credit", "good")
    before = await cluster.get(DEPLOYMENT, "credit-server")

    await cluster.kube.delete(DEPLOYMENT, "lending", "credit-server")

    async def recreated() -> dict[str, Any] | None:
        return await cluster.find(DEPLOYMENT, "credit-server")

    again = await cluster.wait_for(recreated, "the Deployment recreated")
    assert again["spec"]["template"] == before["spec"]["template"]
    assert (
        again["metadata"]["annotations"][TEMPLATE_HASH]
        == before["metadata"]["annotations"][TEMPLATE_HASH]
    )
    assert len(await cluster.jobs("credit")) == 1


class Relay:
    """A TCP relay to the MLflow server that can be down, then up, on one port."""

    def __init__(self, target: str) -> None:
        host_port = target.split("://", 1)[1].rstrip("/")
        self.target_host, port = host_port.rsplit(":", 1)
        self.target_port = int(port)
        self.port = free_port()
        self.server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            except ConnectionError:
                pass
            finally:
                writer.close()

        async def connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            upstream_reader, upstream_writer = await asyncio.open_connection(
                self.target_host, self.target_port
            )
            await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))

        self.server = await asyncio.start_server(connect, "127.0.0.1", self.port)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()


async def test_mlflow_unreachable_is_a_temporary_condition_with_backoff(
    operator: RunningOperator, cluster: Cluster, registry: Registry
) -> None:
    relay = Relay(registry.tracking_uri)
    spec = loanmodel_spec(registry)
    spec["mlflow"] = {"trackingUri": relay.url, "modelName": registry.name}
    await cluster.apply("LoanModel", "credit", spec)
    job = await one_job(cluster, "credit")
    await finish_training(cluster, registry, job, "good")

    down = await cluster.wait_condition("credit", "Trained", "Unknown", "MLflowUnavailable")
    assert relay.url in down["message"]
    assert "retrying" in down["message"]
    errors = operator.metrics.handler_errors.labels("LoanModel", "RegistryUnavailableError")
    assert errors._value.get() >= 1
    status = (await cluster.get(LOANMODEL, "credit"))["status"]
    # The Job's end is not taken as a result until MLflow confirms it.
    assert status["lastTraining"]["outcome"] == "Running"

    await relay.start()
    try:
        await cluster.wait_condition("credit", "Promoted", "True", timeout=30)
    finally:
        await relay.stop()
    status = (await cluster.get(LOANMODEL, "credit"))["status"]
    assert status["lastTraining"]["outcome"] == "Succeeded"
    assert len(await cluster.jobs("credit")) == 1
