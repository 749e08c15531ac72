"""Reconciliation of one DriftPolicy: its CronJob, its checks' verdicts, retraining.

Each pass keeps the policy's CronJob as built from the spec, reads the newest
finished check Job (its container's termination message is the check's
summary as JSON), records it in ``status.lastCheck`` once, and applies the
policy's action. A retraining is requested by setting the LoanModel's
``loanops.io/retrain`` annotation, at most once per cooldown and at most
``maxRetrainsPerWindow`` times per window, and never while the model is
already training; whether the data changed since the champion is for the
training Job to tell (it is started with the champion's data hash and stops
early when nothing changed).
"""

from __future__ import annotations

import copy
import json
import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from loanops.operator import children
from loanops.operator.conditions import DRIFTED, READY, Condition, merge_conditions, now_iso
from loanops.operator.events import EventRecorder, EventType
from loanops.operator.kube import CRONJOB, DRIFTPOLICY, JOB, LOANMODEL, POD, Kube
from loanops.operator.loanmodels import (
    DRIFT_REQUEST_PREFIX,
    job_state,
    parse_time,
    termination_message,
)
from loanops.operator.metrics import OperatorMetrics
from loanops.operator.resources import (
    DRIFT_COMPONENT,
    DRIFTPOLICY_LABEL,
    RETRAIN_ANNOTATION,
    DriftPolicySpec,
    LoanModelSpec,
)
from loanops.operator.settings import OperatorSettings

if TYPE_CHECKING:
    from loanops.operator.handlers import Controller

logger = logging.getLogger(__name__)

VERDICTS = {"drift": "Drift", "no_drift": "NoDrift", "insufficient_data": "InsufficientData"}
EVENTS: dict[str, tuple[EventType, str]] = {
    "Drift": ("Warning", "DriftDetected"),
    "NoDrift": ("Normal", "NoDrift"),
    "InsufficientData": ("Normal", "InsufficientData"),
    "CheckFailed": ("Warning", "CheckFailed"),
}


def read_check(job: dict[str, Any], pods: list[dict[str, Any]]) -> dict[str, Any]:
    """``status.lastCheck`` for a finished check Job."""
    state, job_message = job_state(job)
    message, _ = termination_message(pods, "drift")
    finished = job.get("status", {}).get("completionTime") or now_iso()
    for condition in job.get("status", {}).get("conditions") or []:
        if condition.get("type") == "Failed" and condition.get("lastTransitionTime"):
            finished = condition["lastTransitionTime"]
    check: dict[str, Any] = {"job": job["metadata"]["name"], "time": finished}
    if state == "Failed":
        last_line = ((message or "").strip().splitlines() or [""])[-1]
        check.update(result="CheckFailed", message=f"{job_message} {last_line}".strip()[:1000])
        return check
    try:
        summary = json.loads(message or "")
        verdict = VERDICTS[summary["verdict"]]
    except (json.JSONDecodeError, KeyError, TypeError):
        check.update(
            result="CheckFailed",
            message=f"the check left no readable summary: {(message or '')[:200]!r}",
        )
        return check
    drifted = [str(f) for f in summary.get("drifted") or []]
    check.update(
        result=verdict,
        samples=int(summary.get("samples") or 0),
        modelVersions=[str(v) for v in summary.get("versions") or []],
        driftedFields=drifted,
        driftedFieldsText=",".join(drifted),
        scores={str(k): float(v) for k, v in (summary.get("psi") or {}).items()},
        message=str(summary.get("summary") or ""),
    )
    return check


class DriftPolicyReconciler:
    """Keeps DriftPolicies' CronJobs and acts on their checks."""

    def __init__(
        self,
        kube: Kube,
        settings: OperatorSettings,
        metrics: OperatorMetrics,
        controller: Controller | None = None,
    ) -> None:
        self.kube = kube
        self.settings = settings
        self.metrics = metrics
        self.controller = controller
        self.events = EventRecorder(kube)

    async def reconcile(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """One pass over ``body``; returns the status written, or None if unchanged."""
        meta = body["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        status = copy.deepcopy(body.get("status") or {})
        conditions: list[Condition] = []
        try:
            spec = DriftPolicySpec.model_validate(body.get("spec") or {})
        except ValidationError as error:
            problem = "; ".join(
                f"spec.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()
            )
            conditions.append(Condition(READY, "False", "InvalidSpec", problem))
            return await self._write(body, status, conditions)

        model = await self.kube.get(LOANMODEL, namespace, spec.model_ref.name)
        model_spec = None
        if model is not None:
            try:
                model_spec = LoanModelSpec.model_validate(model.get("spec") or {})
            except ValidationError:
                model_spec = None
        if model is None or model_spec is None:
            word = "does not exist" if model is None else "has an invalid spec"
            conditions.append(
                Condition(
                    READY, "False", "ModelNotFound", f"LoanModel {spec.model_ref.name} {word}."
                )
            )
        elif model_spec.serving.prediction_log is None:
            conditions.append(
                Condition(
                    READY,
                    "False",
                    "NoPredictionLog",
                    f"LoanModel {spec.model_ref.name} sets no spec.serving.predictionLog; "
                    "there is nothing to check.",
                )
            )
        else:
            cronjob = children.drift_cronjob(body, spec, model_spec, self.settings)
            await self._ensure_cronjob(body, cronjob)
            status["cronJob"] = cronjob["metadata"]["name"]
            conditions.append(
                Condition(
                    READY,
                    "True",
                    "Scheduled",
                    f"CronJob {status['cronJob']} checks {spec.model_ref.name} on "
                    f"{spec.schedule!r} over {spec.window_hours:g} h.",
                )
            )

        check = await self._newest_check(namespace, name)
        if check is not None and check["job"] != (status.get("lastCheck") or {}).get("job"):
            status["lastCheck"] = check
            await self._record(body, spec, check)
            if model is not None:
                await self._act(body, spec, model, status, check)
        conditions.append(self._drifted(status.get("lastCheck")))
        written = await self._write(body, status, conditions)
        if written is not None and self.controller is not None:
            # The LoanModel's Drifted condition follows this policy's verdict.
            self.controller.request("LoanModel", namespace, spec.model_ref.name)
        return written

    async def _ensure_cronjob(self, body: dict[str, Any], desired: dict[str, Any]) -> None:
        meta = desired["metadata"]
        current = await self.kube.get(CRONJOB, meta["namespace"], meta["name"])
        if current is None:
            await self.kube.create(desired)
            await self.events.emit(
                body, "Normal", "CronJobCreated", f"Created CronJob {meta['name']}."
            )
        elif (current["metadata"].get("annotations") or {}).get(children.TEMPLATE_HASH) != meta[
            "annotations"
        ][children.TEMPLATE_HASH]:
            await self.kube.patch(
                CRONJOB,
                meta["namespace"],
                meta["name"],
                {
                    "metadata": {"labels": meta["labels"], "annotations": meta["annotations"]},
                    "spec": desired["spec"],
                },
            )
            await self.events.emit(
                body, "Normal", "CronJobUpdated", f"Updated CronJob {meta['name']}."
            )

    async def _newest_check(self, namespace: str, name: str) -> dict[str, Any] | None:
        jobs = await self.kube.list(
            JOB, namespace, {DRIFTPOLICY_LABEL: name, "app.kubernetes.io/name": DRIFT_COMPONENT}
        )
        finished = [job for job in jobs if job_state(job)[0] != "Running"]
        if not finished:
            return None
        # CronJob Jobs are named after their scheduled minute: the name breaks
        # ties between Jobs created within the same second.
        newest = max(
            finished,
            key=lambda j: (j["metadata"].get("creationTimestamp") or "", j["metadata"]["name"]),
        )
        pods = await self.kube.list(POD, namespace, {"job-name": newest["metadata"]["name"]})
        return read_check(newest, pods)

    async def _record(
        self, body: dict[str, Any], spec: DriftPolicySpec, check: dict[str, Any]
    ) -> None:
        meta = body["metadata"]
        result = check["result"]
        self.metrics.drift_checks.labels(
            {"Drift": "drift", "NoDrift": "no_drift", "InsufficientData": "insufficient_data"}.get(
                result, "failed"
            )
        ).inc()
        owner = (meta["namespace"], spec.model_ref.name)
        if result in ("Drift", "NoDrift"):
            for field, score in (check.get("scores") or {}).items():
                self.metrics.drift_score.labels(*owner, meta["name"], field).set(score)
            self.metrics.drift_detected.labels(*owner, meta["name"]).set(
                1 if result == "Drift" else 0
            )
        kind, reason = EVENTS[result]
        if result == "Drift":
            text = (
                f"Drift in {check.get('driftedFieldsText')} over {check.get('samples')} "
                f"predictions (Job {check['job']})."
            )
        else:
            text = f"{check.get('message') or result} (Job {check['job']})."
        await self.events.emit(body, kind, reason, text)

    async def _act(
        self,
        body: dict[str, Any],
        spec: DriftPolicySpec,
        model: dict[str, Any],
        status: dict[str, Any],
        check: dict[str, Any],
    ) -> None:
        now = datetime.now(UTC)
        window_start = now - timedelta(hours=spec.retrain_window_hours)
        requests = [
            stamp
            for stamp in status.get("retrainRequests") or []
            if (parse_time(stamp) or now) >= window_start
        ]
        status["retrainRequests"] = requests
        if check["result"] != "Drift":
            status["lastDecision"] = {
                "action": "None",
                "reason": f"{check['result']}.",
                "time": now_iso(),
            }
            return
        if spec.action == "Alert":
            status["lastDecision"] = {
                "action": "Alerted",
                "reason": "action is Alert: drift recorded, no retraining requested.",
                "time": now_iso(),
            }
            return

        refusal = None
        latest = parse_time(requests[0]) if requests else None
        training = ((model.get("status") or {}).get("lastTraining") or {}).get("outcome")
        if latest is not None and now - latest < timedelta(hours=spec.cooldown_hours):
            allowed = latest + timedelta(hours=spec.cooldown_hours)
            refusal = (
                f"cooldown: the last request was at {requests[0]}; the next is allowed after "
                f"{allowed.replace(microsecond=0).isoformat()}"
            )
        elif len(requests) >= spec.max_retrains_per_window:
            refusal = (
                f"{len(requests)} request(s) in the last {spec.retrain_window_hours:g} h "
                f"(maximum {spec.max_retrains_per_window})"
            )
        elif training == "Running":
            refusal = "the LoanModel is already training"
        if refusal is not None:
            status["lastDecision"] = {
                "action": "RetrainSkipped",
                "reason": refusal,
                "time": now_iso(),
            }
            await self.events.emit(body, "Normal", "RetrainSkipped", f"No retraining: {refusal}.")
            return

        stamp = now_iso()
        token = f"{DRIFT_REQUEST_PREFIX}{body['metadata']['name']}/{stamp}"
        meta = model["metadata"]
        await self.kube.patch(
            LOANMODEL,
            meta["namespace"],
            meta["name"],
            {"metadata": {"annotations": {RETRAIN_ANNOTATION: token}}},
        )
        status["retrainRequests"] = [stamp, *requests][:100]
        fields = check.get("driftedFieldsText")
        status["lastDecision"] = {
            "action": "RetrainRequested",
            "reason": f"drift in {fields}; asked {meta['name']} to retrain.",
            "time": stamp,
        }
        await self.events.emit(
            body,
            "Normal",
            "RetrainRequested",
            f"Asked LoanModel {meta['name']} to retrain: drift in {fields}.",
        )

    @staticmethod
    def _drifted(check: dict[str, Any] | None) -> Condition:
        if not check:
            return Condition(DRIFTED, "Unknown", "NotChecked", "No check has finished yet.")
        result = check["result"]
        if result == "Drift":
            return Condition(
                DRIFTED, "True", "DriftDetected", f"Drifted: {check.get('driftedFieldsText')}."
            )
        if result == "NoDrift":
            return Condition(DRIFTED, "False", "NoDrift", check.get("message") or "No drift.")
        reason = "InsufficientData" if result == "InsufficientData" else "CheckFailed"
        return Condition(DRIFTED, "Unknown", reason, check.get("message") or reason)

    async def _write(
        self, body: dict[str, Any], status: dict[str, Any], conditions: list[Condition]
    ) -> dict[str, Any] | None:
        meta = body["metadata"]
        previous = body.get("status") or {}
        status["conditions"] = merge_conditions(
            previous.get("conditions"), conditions, generation=meta.get("generation")
        )
        if meta.get("generation") is not None:
            status["observedGeneration"] = meta["generation"]
        if status == previous:
            return None
        await self.kube.patch(
            DRIFTPOLICY, meta["namespace"], meta["name"], {"status": status}, subresource="status"
        )
        logger.info(
            "DriftPolicy %s/%s: %s.",
            meta["namespace"],
            meta["name"],
            "; ".join(f"{c.type}={c.status} {c.reason}" for c in conditions),
        )
        return status
