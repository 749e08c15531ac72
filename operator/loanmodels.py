"""Reconciliation of one LoanModel: train, verify, promote, serve, report.

The reconciler is level-triggered: each pass reads the LoanModel, its training
Job and Pod, its Deployment, the MLflow registry and the DriftPolicies that
watch it, does at most what is missing, and writes ``status`` when it changed.
Nothing is remembered between passes except in ``status`` and in the cluster,
so an operator restart resumes where the last one stopped:

- a training is identified by a *request digest* (training-relevant spec,
  ``loanops.io/retrain`` value, schedule slot) and its Job is named after it,
  so a second create of the same training conflicts instead of duplicating;
- a finished request (succeeded or failed) is recorded in
  ``status.lastTraining`` and never started again; only a new digest (spec
  change, retrain request, schedule) starts a new Job;
- the champion is what the MLflow ``champion`` alias says, and the Deployment
  runs exactly that version (or ``spec.serving.pinnedVersion``).
"""

from __future__ import annotations

import copy
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from croniter import croniter
from pydantic import ValidationError

from loanops.errors import ConfigurationError
from loanops.operator import children
from loanops.operator.conditions import (
    DRIFTED,
    PROMOTED,
    READY,
    SERVING,
    TRAINED,
    Condition,
    derive_phase,
    merge_conditions,
    now_iso,
)
from loanops.operator.events import EventRecorder
from loanops.operator.kube import DEPLOYMENT, DRIFTPOLICY, JOB, LOANMODEL, POD, SERVICE, Kube
from loanops.operator.metrics import OperatorMetrics
from loanops.operator.registry import (
    ModelRegistry,
    RegistryUnavailableError,
    VerificationError,
    VersionInfo,
)
from loanops.operator.resources import (
    APPROVE_ANNOTATION,
    RETRAIN_ANNOTATION,
    LoanModelSpec,
    digest,
)
from loanops.operator.settings import OperatorSettings
from loanops.promotion import PromotionDecision, PromotionPolicy

logger = logging.getLogger(__name__)

# A retraining asked for by a DriftPolicy carries this prefix; it is skipped
# when the data has not changed since the champion was trained.
DRIFT_REQUEST_PREFIX = "driftpolicy/"


@dataclass
class Pass:
    """What one reconciliation learnt, turned into conditions at the end."""

    trained: Condition | None = None
    promoted: Condition | None = None
    serving: Condition | None = None
    drifted: Condition | None = None
    champion: VersionInfo | None = None
    # The condition the step under way reports, should MLflow not answer.
    stage: str = TRAINED


def parse_time(value: str | None) -> datetime | None:
    """An RFC 3339 timestamp as an aware datetime."""
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def schedule_slot(schedule: str | None, created: str | None, now: datetime) -> str | None:
    """The latest cron fire time not after ``now`` and after creation, if any."""
    if not schedule:
        return None
    try:
        previous = croniter(schedule, now).get_prev(datetime)
    except (ValueError, KeyError) as error:
        raise ConfigurationError(
            f"spec.training.schedule {schedule!r} is not a cron expression: {error}"
        ) from error
    born = parse_time(created)
    if born is not None and previous <= born:
        return None
    return str(previous.astimezone(UTC).isoformat())


def job_state(job: dict[str, Any]) -> tuple[str, str]:
    """Running, Succeeded or Failed, with the Job controller's message."""
    for condition in job.get("status", {}).get("conditions") or []:
        if condition.get("status") != "True":
            continue
        if condition.get("type") in ("Complete", "SuccessCriteriaMet"):
            return "Succeeded", condition.get("message", "")
        if condition.get("type") in ("Failed", "FailureTarget"):
            reason = condition.get("reason", "")
            message = condition.get("message", "")
            return "Failed", f"{reason}: {message}".strip(": ")
    return "Running", ""


def termination_message(
    pods: list[dict[str, Any]], container: str
) -> tuple[str | None, int | None]:
    """The last finished ``container``'s termination message and exit code."""
    finished = []
    for pod in pods:
        for status in pod.get("status", {}).get("containerStatuses") or []:
            terminated = (status.get("state") or {}).get("terminated")
            if status.get("name") == container and terminated:
                finished.append(terminated)
    if not finished:
        return None, None
    last = max(finished, key=lambda t: t.get("finishedAt") or "")
    return last.get("message"), last.get("exitCode")


def parse_outcome(message: str | None) -> dict[str, Any]:
    """The trainer's outcome JSON from a termination message."""
    if not message:
        raise ValueError("the trainer's container left no termination message")
    try:
        outcome = json.loads(message)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"the termination message is not the outcome JSON: {message[:200]!r}"
        ) from error
    if not isinstance(outcome, dict):
        raise ValueError("the termination message is not a JSON object")
    if outcome.get("skipped"):
        return outcome
    missing = [key for key in ("run_id", "version", "metrics") if key not in outcome]
    if missing:
        raise ValueError(f"the outcome lacks {', '.join(missing)}")
    return outcome


def deployment_rollout(deployment: dict[str, Any], version: str) -> tuple[bool, str, int]:
    """Whether every replica runs ``version`` and is available, in words."""
    spec = deployment.get("spec", {})
    status = deployment.get("status", {})
    wanted = int(spec.get("replicas", 1))
    generation = deployment.get("metadata", {}).get("generation")
    observed = status.get("observedGeneration")
    updated = int(status.get("updatedReplicas") or 0)
    available = int(status.get("availableReplicas") or 0)
    total = int(status.get("replicas") or 0)
    current = generation is None or (observed is not None and observed >= generation)
    done = current and updated >= wanted and available >= wanted and total <= wanted
    if done:
        return True, f"version {version} on {available}/{wanted} replicas", available
    return (
        False,
        f"rolling to version {version}: {updated}/{wanted} updated, {available} available",
        available,
    )


class LoanModelReconciler:
    """Drives LoanModels towards what their spec declares."""

    def __init__(
        self,
        kube: Kube,
        registry: ModelRegistry,
        settings: OperatorSettings,
        metrics: OperatorMetrics,
    ) -> None:
        self.kube = kube
        self.registry = registry
        self.settings = settings
        self.metrics = metrics
        self.events = EventRecorder(kube)

    async def reconcile(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """One pass over ``body``; returns the status written, or None if unchanged."""
        status = copy.deepcopy(body.get("status") or {})
        now = datetime.now(UTC)
        result = Pass()
        try:
            spec = LoanModelSpec.model_validate(body.get("spec") or {})
        except ValidationError as error:
            problem = "; ".join(
                f"spec.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()
            )
            result.serving = Condition(SERVING, "False", "InvalidSpec", problem)
            return await self._write(body, status, result)

        unavailable: RegistryUnavailableError | None = None
        try:
            await self._train(body, spec, status, now, result)
            result.stage = PROMOTED
            await self._promote(body, spec, status, result)
            result.stage = SERVING
            await self._serve(body, spec, status, result)
        except ConfigurationError as error:
            result.serving = Condition(SERVING, "False", "InvalidSpec", str(error))
        except RegistryUnavailableError as error:
            # What this pass did so far is written; the step that needed MLflow
            # says so and the caller retries with backoff.
            unavailable = error
            message = f"{error}; retrying with backoff."
            condition = Condition(result.stage, "Unknown", "MLflowUnavailable", message)
            setattr(result, result.stage.lower(), condition)
        await self._drift(body, status, result)
        written = await self._write(body, status, result)
        if unavailable is not None:
            raise unavailable
        return written

    # -- training ---------------------------------------------------------------------------

    def _request(
        self, body: dict[str, Any], spec: LoanModelSpec, now: datetime
    ) -> tuple[str, dict[str, Any]]:
        annotations = body["metadata"].get("annotations") or {}
        parts = {
            "spec": spec.training_digest(),
            "retrain": annotations.get(RETRAIN_ANNOTATION),
            "slot": schedule_slot(
                spec.training.schedule, body["metadata"].get("creationTimestamp"), now
            ),
        }
        return digest(parts), parts

    @staticmethod
    def _reason(last: dict[str, Any], parts: dict[str, Any]) -> str:
        if not last:
            return "Created"
        if parts["spec"] != last.get("specDigest"):
            return "SpecChanged"
        if parts["retrain"] != last.get("retrainRequest"):
            return "RetrainRequested"
        return "Scheduled"

    async def _train(
        self,
        body: dict[str, Any],
        spec: LoanModelSpec,
        status: dict[str, Any],
        now: datetime,
        result: Pass,
    ) -> None:
        meta = body["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        last: dict[str, Any] = status.get("lastTraining") or {}
        request, parts = self._request(body, spec, now)

        if last.get("request") != request:
            reason = self._reason(last, parts)
            if last.get("outcome") == "Running" and last.get("job"):
                await self.kube.delete(JOB, namespace, last["job"])
                await self.events.emit(
                    body,
                    "Normal",
                    "TrainingSuperseded",
                    f"Stopped Job {last['job']}: a newer training was requested ({reason}).",
                )
            skip_hash = None
            retrain = parts["retrain"] or ""
            if reason == "Scheduled" or (
                reason == "RetrainRequested" and retrain.startswith(DRIFT_REQUEST_PREFIX)
            ):
                champion = (status.get("champion") or {}).get("dataHash")
                skip_hash = champion or None
            manifest = children.training_job(
                body,
                spec,
                self.settings,
                request=request,
                reason=reason,
                skip_if_data_hash=skip_hash,
            )
            job, created = await self.kube.create(manifest)
            last = {
                "job": manifest["metadata"]["name"],
                "request": request,
                "reason": reason,
                "specDigest": parts["spec"],
                "retrainRequest": parts["retrain"],
                "scheduleSlot": parts["slot"],
                "outcome": "Running",
                "startTime": (job.get("metadata") or {}).get("creationTimestamp") or now_iso(),
            }
            status["lastTraining"] = last
            if created:
                await self.events.emit(
                    body,
                    "Normal",
                    "TrainingStarted",
                    f"Created Job {last['job']} ({reason}) to train {spec.mlflow.model_name}.",
                )
            else:
                logger.info(
                    "LoanModel %s/%s: adopted existing Job %s.", namespace, name, last["job"]
                )

        if last.get("outcome") == "Running":
            registered = await self._watch_job(body, spec, last, result)
            if registered is not None:
                status["challenger"] = {
                    "version": registered.version,
                    "metrics": registered.metrics,
                }

        outcome = last.get("outcome")
        if outcome == "Running":
            result.trained = Condition(
                TRAINED, "False", "TrainingRunning", f"Job {last['job']} is training."
            )
        elif outcome == "Succeeded":
            result.trained = Condition(
                TRAINED, "True", "TrainingSucceeded", last.get("message", "")
            )
        elif outcome == "Skipped":
            result.trained = Condition(TRAINED, "True", "TrainingSkipped", last.get("message", ""))
        elif outcome == "Failed":
            result.trained = Condition(
                TRAINED,
                "False",
                last.get("failureReason") or "TrainingFailed",
                last.get("message", ""),
            )
        self.metrics.training_failing.labels(namespace, name).set(1 if outcome == "Failed" else 0)

    async def _watch_job(
        self, body: dict[str, Any], spec: LoanModelSpec, last: dict[str, Any], result: Pass
    ) -> VersionInfo | None:
        """Record a finished Job in ``last``; return the version it registered, if any."""
        namespace = body["metadata"]["namespace"]
        job = await self.kube.get(JOB, namespace, last["job"])
        if job is None:
            self._finish(
                last, "Failed", "TrainingFailed", f"Job {last['job']} vanished before it finished."
            )
            await self.events.emit(body, "Warning", "TrainingFailed", last["message"])
            return None
        state, job_message = job_state(job)
        if state == "Running":
            return None
        job_status = job.get("status", {})
        pods = await self.kube.list(POD, namespace, {"job-name": last["job"]})
        message, _ = termination_message(pods, "trainer")
        seconds = self._duration(job_status, last)
        if state == "Failed":
            detail = (message or "").strip().splitlines()[-1:] or [""]
            text = f"Job {last['job']} failed ({job_message})"
            if detail[0]:
                text += f": {detail[0][:500]}"
            self._finish(last, "Failed", "TrainingFailed", text, job_status)
            self.metrics.trainings.labels("failed").inc()
            self.metrics.training_duration.labels("failed").observe(seconds)
            await self.events.emit(body, "Warning", "TrainingFailed", text)
            return None

        try:
            outcome = parse_outcome(message)
        except ValueError as error:
            text = f"Job {last['job']} succeeded but {error}."
            self._finish(last, "Failed", "OutcomeUnreadable", text, job_status)
            await self.events.emit(body, "Warning", "OutcomeUnreadable", text)
            return None
        if outcome.get("skipped"):
            text = str(outcome.get("reason") or "the training data is unchanged")
            self._finish(last, "Skipped", "TrainingSkipped", text, job_status)
            last["dataHash"] = outcome.get("data_hash")
            await self.events.emit(body, "Normal", "RetrainSkipped", text)
            return None
        try:
            info = await self.registry.verify(
                spec.mlflow.tracking_uri, spec.mlflow.model_name, outcome
            )
        except VerificationError as error:
            text = f"Job {last['job']} reported version {outcome['version']}, but {error}."
            self._finish(last, "Failed", "VerificationFailed", text, job_status)
            await self.events.emit(body, "Warning", "VerificationFailed", text)
            return None
        metric = spec.promotion.metric
        score = info.score(metric)
        text = f"Job {last['job']} registered version {info.version}"
        if score is not None:
            text += f" ({metric} {score:.4f})"
        self._finish(last, "Succeeded", "TrainingSucceeded", text + ".", job_status)
        last["version"] = info.version
        last["dataHash"] = outcome.get("data_hash") or info.data_hash
        self.metrics.trainings.labels("succeeded").inc()
        self.metrics.training_duration.labels("succeeded").observe(seconds)
        await self.events.emit(body, "Normal", "TrainingSucceeded", text + ".")
        return info

    @staticmethod
    def _duration(job_status: dict[str, Any], last: dict[str, Any]) -> float:
        start = parse_time(job_status.get("startTime") or last.get("startTime"))
        end = parse_time(job_status.get("completionTime")) or datetime.now(UTC)
        return max(0.0, (end - start).total_seconds()) if start else 0.0

    @staticmethod
    def _finish(
        last: dict[str, Any],
        outcome: str,
        reason: str,
        message: str,
        job_status: dict[str, Any] | None = None,
    ) -> None:
        last["outcome"] = outcome
        last["message"] = message
        last["completionTime"] = (job_status or {}).get("completionTime") or now_iso()
        if outcome == "Failed":
            last["failureReason"] = reason
        else:
            last.pop("failureReason", None)

    # -- promotion --------------------------------------------------------------------------

    async def _promote(
        self, body: dict[str, Any], spec: LoanModelSpec, status: dict[str, Any], result: Pass
    ) -> None:
        tracking, model = spec.mlflow.tracking_uri, spec.mlflow.model_name
        policy = PromotionPolicy(
            metric=spec.promotion.metric,
            minimum=spec.promotion.minimum,
            min_improvement=spec.promotion.min_improvement,
        )
        last = status.get("lastTraining") or {}
        challenger: dict[str, Any] = status.get("challenger") or {}
        if last.get("outcome") == "Succeeded" and challenger.get("version") != last.get("version"):
            challenger = {"version": last["version"]}
            status["challenger"] = challenger

        version = challenger.get("version")
        decided = challenger.get("decision") in (
            "Promoted",
            "Rejected",
            "DryRunPromote",
            "DryRunReject",
        )
        if version and not decided:
            decision = await self.registry.evaluate(tracking, model, version, policy)
            await self._decide(body, spec, status, challenger, decision)

        champion = await self.registry.champion(tracking, model)
        result.champion = champion
        if champion is None:
            status.pop("champion", None)
        else:
            before = status.get("champion") or {}
            status["champion"] = {
                "version": champion.version,
                "metric": policy.metric,
                "dataHash": champion.data_hash,
                "promotedAt": before.get("promotedAt")
                if before.get("version") == champion.version
                else now_iso(),
            }
            score = champion.score(policy.metric)
            if score is not None:
                status["champion"]["score"] = score
            status["champion"] = {k: v for k, v in status["champion"].items() if v is not None}
            stamp = parse_time(status["champion"]["promotedAt"])
            if stamp is not None:
                meta = body["metadata"]
                self.metrics.champion_promoted.labels(
                    meta["namespace"], meta["name"], champion.version
                ).set(stamp.timestamp())

        decision_name = challenger.get("decision")
        reason = challenger.get("reason", "")
        if not version:
            result.promoted = Condition(
                PROMOTED, "Unknown", "NoCandidate", "No version trained yet."
            )
        elif decision_name == "Promoted":
            result.promoted = Condition(
                PROMOTED, "True", "Promoted", f"Version {version}: {reason}."
            )
        elif decision_name == "AwaitingApproval":
            result.promoted = Condition(
                PROMOTED,
                "False",
                "AwaitingApproval",
                f"Version {version} passed the policy ({reason}); annotate "
                f"{APPROVE_ANNOTATION}={version} to promote it.",
            )
        elif decision_name in ("DryRunPromote", "DryRunReject"):
            verb = "would be promoted" if decision_name == "DryRunPromote" else "would be rejected"
            result.promoted = Condition(
                PROMOTED, "False", "DryRun", f"Version {version} {verb}: {reason}."
            )
        else:
            result.promoted = Condition(
                PROMOTED, "False", "PromotionRejected", f"Version {version}: {reason}."
            )

    async def _decide(
        self,
        body: dict[str, Any],
        spec: LoanModelSpec,
        status: dict[str, Any],
        challenger: dict[str, Any],
        decision: PromotionDecision,
    ) -> None:
        tracking, model = spec.mlflow.tracking_uri, spec.mlflow.model_name
        version = challenger["version"]
        mode = spec.promotion.mode
        approved = (body["metadata"].get("annotations") or {}).get(APPROVE_ANNOTATION) == version
        challenger["score"] = decision.candidate_value
        challenger["reason"] = decision.reason

        if mode == "DryRun":
            outcome = "DryRunPromote" if decision.promote else "DryRunReject"
            label = f"dry-run-{decision.decision}"
        elif not decision.promote:
            outcome, label = "Rejected", "reject"
        elif mode == "Manual" and not approved:
            outcome, label = "AwaitingApproval", "awaiting-approval"
        else:
            outcome, label = "Promoted", "promote"

        if challenger.get("decision") == outcome:
            return  # still awaiting approval; nothing new to record
        await self.registry.record(tracking, model, version, label, decision.reason)
        if outcome == "Promoted":
            await self.registry.promote(tracking, model, version)
        challenger["decision"] = outcome
        history = [
            {"version": version, "decision": outcome, "reason": decision.reason, "time": now_iso()},
            *(status.get("history") or []),
        ]
        status["history"] = history[: self.settings.history_limit]
        self.metrics.promotions.labels(
            {
                "Promoted": "promoted",
                "Rejected": "rejected",
                "AwaitingApproval": "awaiting_approval",
            }.get(outcome, "dry_run")
        ).inc()
        reason = {
            "Promoted": "Promoted",
            "Rejected": "PromotionRejected",
            "AwaitingApproval": "AwaitingApproval",
        }.get(outcome, "PromotionDryRun")
        await self.events.emit(body, "Normal", reason, f"Version {version}: {decision.reason}.")

    # -- serving ----------------------------------------------------------------------------

    async def _serve(
        self, body: dict[str, Any], spec: LoanModelSpec, status: dict[str, Any], result: Pass
    ) -> None:
        meta = body["metadata"]
        namespace = meta["namespace"]
        pinned = spec.serving.pinned_version
        if pinned:
            found = await self.registry.version(
                spec.mlflow.tracking_uri, spec.mlflow.model_name, pinned
            )
            if found is None:
                result.serving = Condition(
                    SERVING,
                    "False",
                    "PinnedVersionNotFound",
                    f"spec.serving.pinnedVersion {pinned} is not a registered version of "
                    f"{spec.mlflow.model_name!r}; the Deployment is left as it is.",
                )
                return
            target: str | None = pinned
        else:
            target = result.champion.version if result.champion else None
        if target is None:
            result.serving = Condition(
                SERVING, "False", "NoChampion", "No version has been promoted to champion yet."
            )
            return

        desired = children.server_deployment(body, spec, self.settings, version=target)
        name = desired["metadata"]["name"]
        current = await self.kube.get(DEPLOYMENT, namespace, name)
        previous = (status.get("serving") or {}).get("version")
        if current is None:
            current, _ = await self.kube.create(desired)
            await self.events.emit(
                body, "Normal", "Rolled", f"Created Deployment {name} serving version {target}."
            )
        elif (current["metadata"].get("annotations") or {}).get(children.TEMPLATE_HASH) != desired[
            "metadata"
        ]["annotations"][children.TEMPLATE_HASH]:
            current = await self.kube.patch(
                DEPLOYMENT,
                namespace,
                name,
                {
                    "metadata": {
                        "labels": desired["metadata"]["labels"],
                        "annotations": desired["metadata"]["annotations"],
                    },
                    "spec": desired["spec"],
                },
            )
            served = current["spec"]["template"]["metadata"]["labels"].get(
                children.MODEL_VERSION_LABEL
            )
            change = f"from version {previous} " if previous and previous != target else ""
            await self.events.emit(
                body,
                "Normal",
                "Rolled",
                f"Rolled Deployment {name} {change}to version {served}.",
            )
        await self._ensure_service(body)

        done, words, available = deployment_rollout(current, target)
        status["serving"] = {
            "version": target,
            "modelUri": f"models:/{spec.mlflow.model_name}/{target}",
            "pinned": bool(pinned),
            "deployment": name,
            "endpoint": children.endpoint(body),
            "replicas": spec.serving.replicas,
            "readyReplicas": available,
        }
        if done:
            origin = "pinned" if pinned else "champion"
            result.serving = Condition(
                SERVING, "True", "Serving", f"{origin.capitalize()} {words}."
            )
        else:
            result.serving = Condition(
                SERVING, "False", "Rolling", words[0].upper() + words[1:] + "."
            )

    async def _ensure_service(self, body: dict[str, Any]) -> None:
        desired = children.server_service(body)
        meta = desired["metadata"]
        current = await self.kube.get(SERVICE, meta["namespace"], meta["name"])
        if current is None:
            await self.kube.create(desired)
        elif (current["metadata"].get("annotations") or {}).get(children.TEMPLATE_HASH) != meta[
            "annotations"
        ][children.TEMPLATE_HASH]:
            await self.kube.patch(
                SERVICE,
                meta["namespace"],
                meta["name"],
                {"metadata": {"annotations": meta["annotations"]}, "spec": desired["spec"]},
            )

    # -- drift ------------------------------------------------------------------------------

    async def _drift(self, body: dict[str, Any], status: dict[str, Any], result: Pass) -> None:
        meta = body["metadata"]
        policies = [
            policy
            for policy in await self.kube.list(DRIFTPOLICY, meta["namespace"])
            if (policy.get("spec", {}).get("modelRef") or {}).get("name") == meta["name"]
        ]
        checks = [
            (policy["metadata"]["name"], (policy.get("status") or {}).get("lastCheck") or {})
            for policy in policies
        ]
        checks = [(name, check) for name, check in checks if check.get("time")]
        if not checks:
            status.pop("drift", None)
            result.drifted = Condition(
                DRIFTED, "Unknown", "NotChecked", "No DriftPolicy has checked this model yet."
            )
            return
        policy, check = max(checks, key=lambda item: item[1]["time"])
        verdict = check.get("result", "")
        requests = [((p.get("status") or {}).get("retrainRequests") or [None])[0] for p in policies]
        drift = {"policy": policy, "result": verdict, "checkedAt": check["time"]}
        latest = max((r for r in requests if r), default=None)
        if latest:
            drift["lastRetrainRequest"] = latest
        status["drift"] = drift
        fields = ", ".join(check.get("driftedFields") or []) or "none"
        words = f"DriftPolicy {policy} at {check['time']}"
        if verdict == "Drift":
            result.drifted = Condition(
                DRIFTED, "True", "DriftDetected", f"{words}: drifted {fields}."
            )
        elif verdict == "NoDrift":
            result.drifted = Condition(DRIFTED, "False", "NoDrift", f"{words}: no drift.")
        elif verdict == "InsufficientData":
            result.drifted = Condition(
                DRIFTED, "Unknown", "InsufficientData", f"{words}: {check.get('message', '')}"
            )
        else:
            result.drifted = Condition(
                DRIFTED, "Unknown", "CheckFailed", f"{words}: {check.get('message', '')}"
            )

    # -- status -----------------------------------------------------------------------------

    async def _write(
        self, body: dict[str, Any], status: dict[str, Any], result: Pass
    ) -> dict[str, Any] | None:
        meta = body["metadata"]
        previous = body.get("status") or {}
        before = {c.get("type"): c for c in previous.get("conditions") or []}

        def carried(kind: str, default: Condition) -> Condition:
            # A step that did not run this pass (MLflow was down first) keeps
            # what was last known about it.
            old = before.get(kind)
            if old is None:
                return default
            return Condition(kind, old["status"], old["reason"], old.get("message", ""))

        computed = {
            TRAINED: result.trained
            or carried(
                TRAINED, Condition(TRAINED, "Unknown", "NotTrained", "No training has run yet.")
            ),
            PROMOTED: result.promoted
            or carried(
                PROMOTED, Condition(PROMOTED, "Unknown", "NoCandidate", "No version trained yet.")
            ),
            SERVING: result.serving
            or carried(SERVING, Condition(SERVING, "False", "NoChampion", "Nothing to serve yet.")),
            DRIFTED: result.drifted
            or Condition(
                DRIFTED, "Unknown", "NotChecked", "No DriftPolicy has checked this model."
            ),
        }
        serving = computed[SERVING]
        if serving.status == "True":
            ready = Condition(READY, "True", "Ready", serving.message)
        elif serving.reason == "MLflowUnavailable" and READY in before:
            ready = carried(READY, serving)
        else:
            trained = computed[TRAINED]
            cause = (
                trained if trained.status == "False" and serving.reason == "NoChampion" else serving
            )
            ready = Condition(READY, "False", cause.reason, cause.message)
        computed[READY] = ready
        ordered = [computed[kind] for kind in (READY, TRAINED, PROMOTED, SERVING, DRIFTED)]
        status["conditions"] = merge_conditions(
            previous.get("conditions"), ordered, generation=meta.get("generation")
        )
        status["phase"] = derive_phase(computed)
        if meta.get("generation") is not None:
            status["observedGeneration"] = meta["generation"]
        if status == previous:
            return None
        await self.kube.patch(
            # ``status: None`` keys are removed by the merge patch, so what this
            # pass dropped (a champion alias that is gone) leaves the object too.
            kind=LOANMODEL,
            namespace=meta["namespace"],
            name=meta["name"],
            patch={"status": _with_removals(previous, status)},
            subresource="status",
        )
        logger.info(
            "LoanModel %s/%s: %s (%s).",
            meta["namespace"],
            meta["name"],
            status["phase"],
            "; ".join(f"{c.type}={c.status} {c.reason}" for c in ordered),
        )
        return status


def _with_removals(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """``after`` as a merge patch over ``before``: vanished keys become None."""
    patch: dict[str, Any] = dict(after)
    for key in before:
        if key not in after:
            patch[key] = None
    return patch
