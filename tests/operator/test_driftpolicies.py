"""DriftPolicy scenarios: CronJob, verdicts in status, guarded retraining requests.

The check Jobs' termination messages are produced by the real ``loanops drift``
over prediction-log chunks that the server's own logger shipped to moto's S3,
checked against the reference profile of a version the real trainer registered.
"""

from __future__ import annotations

import itertools
import subprocess
import uuid
from typing import Any

import pandas as pd
import pytest
import s3fs

from loanops.operator.children import drift_cronjob_name
from loanops.operator.conditions import now_iso
from loanops.operator.kube import CRONJOB, DRIFTPOLICY
from loanops.operator.resources import RETRAIN_ANNOTATION
from loanops.trainer.synthetic import Shift, generate
from loanops.trainer.training import TrainingOutcome, TrainingSkipped
from tests.conftest import ship_predictions
from tests.operator.conftest import (
    LOANMODEL,
    NAMESPACE,
    Cluster,
    Registry,
    RunningOperator,
    loanmodel_spec,
)
from tests.operator.test_loanmodels import one_job, train_to_ready

pytestmark = pytest.mark.timeout(180)
LOG_URI = "s3://prediction-log/credit/"
SCHEDULED_MINUTES = itertools.count(29_000_000)


@pytest.fixture(scope="module")
def check_messages(
    loanops_command: list[str],
    source_versions: dict[str, TrainingOutcome],
    mlflow_server: str,
    s3_endpoint: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, str]:
    """Termination messages of real drift checks: steady, shifted and empty windows."""
    good = source_versions["good"]
    bucket = f"drift-{uuid.uuid4().hex[:8]}"
    s3fs.S3FileSystem(client_kwargs={"endpoint_url": s3_endpoint}).mkdir(bucket)
    root = tmp_path_factory.mktemp("checks")

    def ship(frame: pd.DataFrame, prefix: str) -> None:
        ship_predictions(
            good, frame, uri=f"s3://{bucket}/{prefix}", spool_dir=root / prefix, max_records=500
        )

    ship(generate(1000, seed=31), "steady")
    ship(generate(1000, seed=32, shift=Shift(scale={"person_income": 0.6})), "shifted")
    ship(generate(40, seed=33), "thin")

    def check(prefix: str) -> str:
        message = root / f"{prefix}.message"
        result = subprocess.run(
            [*loanops_command, "drift", "--predictions", f"s3://{bucket}/{prefix}",
             "--model", good.model_name, "--tracking-uri", mlflow_server, "--hours", "1",
             "--termination-file", str(message)],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        return message.read_text()

    return {"drift": check("shifted"), "no_drift": check("steady"), "thin": check("thin")}


def policy_spec(**overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "modelRef": {"name": "credit"},
        "schedule": "0 * * * *",
        "action": "Retrain",
        "cooldownHours": 24,
    }
    spec.update(overrides)
    return spec


async def ready_model(cluster: Cluster, registry: Registry) -> None:
    spec = loanmodel_spec(registry, serving={"replicas": 1, "predictionLog": {"uri": LOG_URI}})
    await cluster.apply("LoanModel", "credit", spec)
    await train_to_ready(cluster, registry, "credit", "good")


async def start_policy(cluster: Cluster, **overrides: Any) -> None:
    """Apply the DriftPolicy and wait for the operator to schedule its CronJob."""
    await cluster.apply("DriftPolicy", "credit-drift", policy_spec(**overrides))
    await cluster.wait_for(lambda: cluster.find(CRONJOB, "credit-drift-drift"), "the CronJob")


async def run_check(cluster: Cluster, message: str, *, succeeded: bool = True) -> str:
    """Start a check Job from the CronJob's template, as the CronJob controller would."""
    cronjob = await cluster.get(CRONJOB, drift_cronjob_name("credit-drift"))
    template = cronjob["spec"]["jobTemplate"]
    # Named like the CronJob controller names them: after the scheduled
    # minute, so later checks sort after earlier ones.
    name = f"{cronjob['metadata']['name']}-{next(SCHEDULED_MINUTES)}"
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "labels": template["metadata"]["labels"],
            "creationTimestamp": now_iso(),
            "ownerReferences": [
                {"apiVersion": "batch/v1", "kind": "CronJob", "name": cronjob["metadata"]["name"]}
            ],
        },
        "spec": template["spec"],
    }
    created, _ = await cluster.kube.create(job)
    await cluster.finish_job(created, succeeded=succeeded, message=message, container="drift")
    return name


async def last_check(cluster: Cluster, job: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        status = (await cluster.get(DRIFTPOLICY, "credit-drift")).get("status") or {}
        check = status.get("lastCheck") or {}
        return status if check.get("job") == job else None

    found: dict[str, Any] = await cluster.wait_for(probe, f"the verdict of check {job}")
    return found


async def retrain_annotation(cluster: Cluster) -> str | None:
    annotations = (await cluster.get(LOANMODEL, "credit"))["metadata"].get("annotations") or {}
    return annotations.get(RETRAIN_ANNOTATION)


@pytest.mark.asyncio
async def test_a_policy_keeps_its_cronjob(
    operator: RunningOperator, cluster: Cluster, registry: Registry
) -> None:
    await ready_model(cluster, registry)
    await cluster.apply("DriftPolicy", "credit-drift", policy_spec(windowHours=6))

    async def scheduled() -> dict[str, Any] | None:
        return await cluster.find(CRONJOB, "credit-drift-drift")

    cronjob = await cluster.wait_for(scheduled, "the drift CronJob")
    spec = cronjob["spec"]
    assert cronjob["metadata"]["ownerReferences"][0]["kind"] == "DriftPolicy"
    assert spec["schedule"] == "0 * * * *"
    assert spec["concurrencyPolicy"] == "Forbid"
    assert spec["successfulJobsHistoryLimit"] == 3
    assert spec["failedJobsHistoryLimit"] == 3
    pod = spec["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    args = pod["containers"][0]["args"]
    assert args[:3] == ["drift", "--predictions", LOG_URI]
    assert args[args.index("--model") + 1] == registry.name
    assert args[args.index("--hours") + 1] == "6.0"
    assert "--termination-file" in args

    async def policy_ready() -> dict[str, Any] | None:
        status = (await cluster.get(DRIFTPOLICY, "credit-drift")).get("status") or {}
        return next((c for c in status.get("conditions", []) if c["type"] == "Ready"), None)

    ready = await cluster.wait_for(policy_ready, "the DriftPolicy's Ready condition")
    assert (ready["status"], ready["reason"]) == ("True", "Scheduled")
    assert "credit-drift-drift" in ready["message"]

    await cluster.kube.delete(CRONJOB, NAMESPACE, "credit-drift-drift")
    await cluster.wait_for(scheduled, "the drift CronJob recreated")


@pytest.mark.asyncio
async def test_drift_requests_one_retraining_and_unchanged_data_skips_it(
    operator: RunningOperator,
    cluster: Cluster,
    registry: Registry,
    check_messages: dict[str, str],
) -> None:
    await ready_model(cluster, registry)
    champion_hash = (await cluster.get(LOANMODEL, "credit"))["status"]["champion"]["dataHash"]
    await start_policy(cluster)

    first = await run_check(cluster, check_messages["drift"])
    status = await last_check(cluster, first)
    check = status["lastCheck"]
    assert check["result"] == "Drift"
    assert "person_income" in check["driftedFields"]
    assert check["scores"]["person_income"] >= 0.2
    assert check["samples"] == 1000
    assert status["lastDecision"]["action"] == "RetrainRequested"
    token = await cluster.wait_for(lambda: retrain_annotation(cluster), "the retrain request")
    assert token.startswith("driftpolicy/credit-drift/")
    assert [e["type"] for e in await cluster.events("DriftDetected")] == ["Warning"]
    drifted = await cluster.wait_condition("credit", "Drifted", "True", "DriftDetected")
    assert "person_income" in drifted["message"]

    job = await one_job(cluster, "credit", count=2)
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--skip-if-data-hash") + 1] == champion_hash

    # A second drift inside the cooldown asks for nothing more.
    second = await run_check(cluster, check_messages["drift"])
    status = await last_check(cluster, second)
    assert status["lastDecision"]["action"] == "RetrainSkipped"
    assert "cooldown" in status["lastDecision"]["reason"]
    assert len(status["retrainRequests"]) == 1
    assert await retrain_annotation(cluster) == token
    assert len(await cluster.jobs("credit")) == 2

    # The data has not changed since the champion: the trainer says so, and
    # the LoanModel records the skip with its reason.
    skipped = TrainingSkipped(champion_hash, 3000).to_json()
    await cluster.finish_job(job, succeeded=True, message=skipped)
    trained = await cluster.wait_condition("credit", "Trained", "True", "TrainingSkipped")
    assert "unchanged since the champion" in trained["message"]
    model = await cluster.get(LOANMODEL, "credit")
    assert model["status"]["lastTraining"]["outcome"] == "Skipped"
    assert model["status"]["champion"]["version"] == "1"
    assert [e["reason"] for e in await cluster.events("RetrainSkipped")]
    scores = operator.metrics.drift_score.labels(
        NAMESPACE, "credit", "credit-drift", "person_income"
    )
    assert scores._value.get() >= 0.2


@pytest.mark.asyncio
async def test_no_drift_and_insufficient_data_request_nothing(
    operator: RunningOperator,
    cluster: Cluster,
    registry: Registry,
    check_messages: dict[str, str],
) -> None:
    await ready_model(cluster, registry)
    await start_policy(cluster)

    steady = await run_check(cluster, check_messages["no_drift"])
    status = await last_check(cluster, steady)
    assert status["lastCheck"]["result"] == "NoDrift"
    await cluster.wait_condition("credit", "Drifted", "False", "NoDrift")

    thin = await run_check(cluster, check_messages["thin"])
    status = await last_check(cluster, thin)
    assert status["lastCheck"]["result"] == "InsufficientData"
    assert status["lastCheck"]["samples"] == 40
    drifted = next(c for c in status["conditions"] if c["type"] == "Drifted")
    assert (drifted["status"], drifted["reason"]) == ("Unknown", "InsufficientData")
    await cluster.wait_condition("credit", "Drifted", "Unknown", "InsufficientData")
    assert await retrain_annotation(cluster) is None
    assert len(await cluster.jobs("credit")) == 1
    assert await cluster.events("InsufficientData")


@pytest.mark.asyncio
async def test_a_crashed_check_is_an_error_never_drift(
    operator: RunningOperator, cluster: Cluster, registry: Registry
) -> None:
    await ready_model(cluster, registry)
    await start_policy(cluster)

    crash = "Traceback (most recent call last):\nConnectionError: s3://prediction-log unreachable"
    job = await run_check(cluster, crash, succeeded=False)
    status = await last_check(cluster, job)
    assert status["lastCheck"]["result"] == "CheckFailed"
    assert "unreachable" in status["lastCheck"]["message"]
    drifted = next(c for c in status["conditions"] if c["type"] == "Drifted")
    assert (drifted["status"], drifted["reason"]) == ("Unknown", "CheckFailed")
    warnings = await cluster.events("CheckFailed")
    assert warnings
    assert warnings[0]["type"] == "Warning"
    assert await retrain_annotation(cluster) is None
    assert operator.metrics.drift_checks.labels("failed")._value.get() == 1


@pytest.mark.asyncio
async def test_alert_action_records_drift_and_requests_nothing(
    operator: RunningOperator,
    cluster: Cluster,
    registry: Registry,
    check_messages: dict[str, str],
) -> None:
    await ready_model(cluster, registry)
    await start_policy(cluster, action="Alert")

    job = await run_check(cluster, check_messages["drift"])
    status = await last_check(cluster, job)
    assert status["lastCheck"]["result"] == "Drift"
    assert status["lastDecision"]["action"] == "Alerted"
    assert await cluster.events("DriftDetected")
    assert await retrain_annotation(cluster) is None
    assert len(await cluster.jobs("credit")) == 1
    detected = operator.metrics.drift_detected.labels(NAMESPACE, "credit", "credit-drift")
    assert detected._value.get() == 1
