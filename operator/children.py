"""Builders of the objects a LoanModel or DriftPolicy owns, as plain manifests.

Every child is built whole from the owner's spec and the operator settings, so
comparing a stored child's ``loanops.io/template-hash`` annotation with a fresh
build tells whether it must be rolled. Pods of training and drift Jobs get no
Kubernetes API rights (no service-account token) and Secrets only through
``secretKeyRef``.
"""

from __future__ import annotations

import copy
from typing import Any

from loanops.operator.resources import (
    DRIFT_COMPONENT,
    DRIFTPOLICY_LABEL,
    REQUEST_LABEL,
    SERVER_COMPONENT,
    SERVER_PORT,
    TRAINER_COMPONENT,
    DriftPolicySpec,
    LoanModelSpec,
    MlflowSecret,
    SecretKeys,
    child_metadata,
    child_name,
    digest,
    labels_for,
)
from loanops.operator.settings import OperatorSettings

TEMPLATE_HASH = "loanops.io/template-hash"
MODEL_VERSION_LABEL = "loanops.io/model-version"
REQUEST_REASON_ANNOTATION = "loanops.io/request-reason"
# The images' numeric non-root user (see the Dockerfiles).
RUN_AS_USER = 10001
TOKEN_DIR = "/var/run/secrets/loanops"
SPOOL_DIR = "/var/spool/loanops"


def training_job_name(owner: str, request: str) -> str:
    """The one name a training for ``request`` can have: a second create conflicts."""
    return child_name(owner, f"train-{request}")


def server_name(owner: str) -> str:
    """The name of the server Deployment and its Service."""
    return child_name(owner, "server")


def drift_cronjob_name(policy: str) -> str:
    """The name of a DriftPolicy's CronJob."""
    return child_name(policy, "drift")


def _pod_security() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_USER,
        "runAsGroup": RUN_AS_USER,
        "fsGroup": RUN_AS_USER,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _container_security() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }


def _secret_env(name: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def _s3_env(secret: SecretKeys | None, endpoint: str | None) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = []
    if endpoint:
        env.append({"name": "LOANOPS_S3_ENDPOINT", "value": endpoint})
    if secret is not None:
        env.append(_secret_env("AWS_ACCESS_KEY_ID", secret.name, secret.access_key_id_key))
        env.append(_secret_env("AWS_SECRET_ACCESS_KEY", secret.name, secret.secret_access_key_key))
    return env


def _mlflow_env(tracking_uri: str, secret: MlflowSecret | None) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [{"name": "MLFLOW_TRACKING_URI", "value": tracking_uri}]
    if secret is not None:
        env.append(_secret_env("MLFLOW_TRACKING_USERNAME", secret.name, secret.username_key))
        env.append(_secret_env("MLFLOW_TRACKING_PASSWORD", secret.name, secret.password_key))
    return env


def _scratch_env() -> list[dict[str, Any]]:
    # The root filesystem is read-only: every library that writes caches or
    # config (matplotlib, numba under shap, catboost) is pointed at /tmp.
    return [
        {"name": "HOME", "value": "/tmp"},
        {"name": "MPLCONFIGDIR", "value": "/tmp/matplotlib"},
        {"name": "NUMBA_CACHE_DIR", "value": "/tmp/numba"},
    ]


def _with_hash(manifest: dict[str, Any], hashed: Any) -> dict[str, Any]:
    manifest["metadata"].setdefault("annotations", {})[TEMPLATE_HASH] = digest(hashed, 16)
    return manifest


def _batch_container(
    name: str, image: str, args: list[str], env: list[dict[str, Any]], resources: dict[str, Any]
) -> dict[str, Any]:
    """A run-to-completion container: scratch /tmp, its outcome as termination message."""
    return {
        "name": name,
        "image": image,
        "args": args,
        "env": env,
        "workingDir": "/tmp",
        "resources": copy.deepcopy(resources),
        "securityContext": _container_security(),
        # A crash before the outcome is written still leaves its last log
        # lines as the message the operator reports.
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [{"name": "scratch", "mountPath": "/tmp"}],
    }


def _job_spec(
    labels: dict[str, str],
    container: dict[str, Any],
    *,
    backoff_limit: int,
    deadline_seconds: int,
    ttl_seconds: int,
) -> dict[str, Any]:
    """A Job spec whose pod has no API token and runs ``container`` once."""
    return {
        "backoffLimit": backoff_limit,
        "activeDeadlineSeconds": deadline_seconds,
        "ttlSecondsAfterFinished": ttl_seconds,
        "template": {
            "metadata": {"labels": labels},
            "spec": {
                "restartPolicy": "Never",
                "automountServiceAccountToken": False,
                "enableServiceLinks": False,
                "securityContext": _pod_security(),
                "containers": [container],
                "volumes": [{"name": "scratch", "emptyDir": {}}],
            },
        },
    }


def training_job(
    owner: dict[str, Any],
    spec: LoanModelSpec,
    settings: OperatorSettings,
    *,
    request: str,
    reason: str,
    skip_if_data_hash: str | None = None,
) -> dict[str, Any]:
    """The training Job for one training request of a LoanModel.

    With ``skip_if_data_hash`` the trainer stops before tuning when the data's
    content hash equals it, and reports the training as skipped.
    """
    name = owner["metadata"]["name"]
    labels = {**labels_for(name, TRAINER_COMPONENT), REQUEST_LABEL: request}
    training = spec.training
    args = [
        "train",
        "--data",
        spec.data.uri,
        "--model-name",
        spec.mlflow.model_name,
        "--families",
        ",".join(training.families),
        "--max-evals",
        str(training.max_evals),
        "--cv-folds",
        str(training.cv_folds),
        "--objective",
        training.objective,
        "--seed",
        str(training.seed),
        "--outcome-file",
        "/dev/termination-log",
    ]
    if skip_if_data_hash:
        args += ["--skip-if-data-hash", skip_if_data_hash]
    env = [
        *_mlflow_env(spec.mlflow.tracking_uri, spec.mlflow.credentials_secret),
        *_s3_env(spec.data.credentials_secret, spec.data.s3_endpoint),
        *_scratch_env(),
    ]
    container = _batch_container(
        "trainer",
        training.image or settings.trainer_image,
        args,
        env,
        training.resources or settings.training_resources,
    )
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": child_metadata(
            owner,
            training_job_name(name, request),
            labels,
            annotations={REQUEST_REASON_ANNOTATION: reason},
        ),
        "spec": _job_spec(
            labels,
            container,
            backoff_limit=training.backoff_limit,
            deadline_seconds=training.deadline_seconds,
            ttl_seconds=settings.job_ttl_seconds,
        ),
    }


def server_deployment(
    owner: dict[str, Any],
    spec: LoanModelSpec,
    settings: OperatorSettings,
    *,
    version: str,
) -> dict[str, Any]:
    """The prediction server Deployment running exactly ``version``."""
    name = owner["metadata"]["name"]
    selector = labels_for(name, SERVER_COMPONENT)
    serving = spec.serving
    args = [
        "serve",
        "--model",
        f"models:/{spec.mlflow.model_name}/{version}",
        "--host",
        "0.0.0.0",
        "--port",
        str(SERVER_PORT),
        "--spool-dir",
        SPOOL_DIR,
    ]
    env = [*_mlflow_env(spec.mlflow.tracking_uri, spec.mlflow.credentials_secret)]
    env += _scratch_env()
    volumes: list[dict[str, Any]] = [
        {"name": "scratch", "emptyDir": {}},
        {"name": "spool", "emptyDir": {}},
    ]
    mounts: list[dict[str, Any]] = [
        {"name": "scratch", "mountPath": "/tmp"},
        {"name": "spool", "mountPath": SPOOL_DIR},
    ]
    log = serving.prediction_log
    if log is not None:
        args += ["--prediction-log", log.uri]
        env += _s3_env(log.credentials_secret, log.s3_endpoint)
    if serving.api_key_secret is not None:
        args += ["--api-token-file", f"{TOKEN_DIR}/{serving.api_key_secret.key}"]
        volumes.append(
            {
                "name": "api-token",
                "secret": {"secretName": serving.api_key_secret.name, "defaultMode": 0o440},
            }
        )
        mounts.append({"name": "api-token", "mountPath": TOKEN_DIR, "readOnly": True})

    def probe(path: str, **timing: int) -> dict[str, Any]:
        return {"httpGet": {"path": path, "port": "http"}, **timing}

    container = {
        "name": "server",
        "image": serving.image or settings.server_image,
        "args": args,
        "env": env,
        "ports": [{"name": "http", "containerPort": SERVER_PORT, "protocol": "TCP"}],
        "resources": copy.deepcopy(serving.resources or settings.serving_resources),
        "securityContext": _container_security(),
        # Loading a model from MLflow can take a while; liveness starts after.
        "startupProbe": probe("/livez", periodSeconds=5, failureThreshold=60),
        "readinessProbe": probe("/readyz", periodSeconds=5, failureThreshold=3),
        "livenessProbe": probe("/livez", periodSeconds=10, failureThreshold=3),
        "volumeMounts": mounts,
    }
    template = {
        "metadata": {
            "labels": {**selector, MODEL_VERSION_LABEL: version},
        },
        "spec": {
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "securityContext": _pod_security(),
            # The server flushes its prediction log on SIGTERM within this.
            "terminationGracePeriodSeconds": 30,
            "containers": [container],
            "volumes": volumes,
        },
    }
    manifest = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": child_metadata(
            owner, server_name(name), {**selector, MODEL_VERSION_LABEL: version}
        ),
        "spec": {
            "replicas": serving.replicas,
            "selector": {"matchLabels": selector},
            # No replica leaves before its successor is ready.
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            "revisionHistoryLimit": 5,
            "template": template,
        },
    }
    return _with_hash(manifest, manifest["spec"])


def server_service(owner: dict[str, Any]) -> dict[str, Any]:
    """The ClusterIP Service in front of the server pods."""
    name = owner["metadata"]["name"]
    selector = labels_for(name, SERVER_COMPONENT)
    manifest = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": child_metadata(owner, server_name(name), selector),
        "spec": {
            "type": "ClusterIP",
            "selector": selector,
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
        },
    }
    return _with_hash(manifest, manifest["spec"])


def endpoint(owner: dict[str, Any]) -> str:
    """The in-cluster URL of a LoanModel's prediction Service."""
    meta = owner["metadata"]
    return f"http://{server_name(meta['name'])}.{meta['namespace']}.svc:80"


def drift_cronjob(
    policy: dict[str, Any],
    spec: DriftPolicySpec,
    model: LoanModelSpec,
    settings: OperatorSettings,
) -> dict[str, Any]:
    """The CronJob that runs ``loanops drift`` for a DriftPolicy."""
    name = policy["metadata"]["name"]
    model_name = spec.model_ref.name
    labels = {**labels_for(model_name, DRIFT_COMPONENT), DRIFTPOLICY_LABEL: name}
    log = model.serving.prediction_log
    if log is None:
        raise ValueError("the LoanModel has no serving.predictionLog")
    args = [
        "drift",
        "--predictions",
        log.uri,
        "--model",
        model.mlflow.model_name,
        "--hours",
        str(spec.window_hours),
        "--min-samples",
        str(spec.min_samples),
        "--alpha",
        str(spec.thresholds.alpha),
        "--psi",
        str(spec.thresholds.psi),
        "--termination-file",
        "/dev/termination-log",
    ]
    env = [
        *_mlflow_env(model.mlflow.tracking_uri, model.mlflow.credentials_secret),
        *_s3_env(log.credentials_secret, log.s3_endpoint),
        *_scratch_env(),
    ]
    container = _batch_container(
        "drift",
        spec.image or settings.trainer_image,
        args,
        env,
        spec.resources or settings.drift_resources,
    )
    manifest = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": child_metadata(policy, drift_cronjob_name(name), labels),
        "spec": {
            "schedule": spec.schedule,
            "timeZone": "Etc/UTC",
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": 600,
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {
                "metadata": {"labels": labels},
                # A failed check is reported, not retried: the next run comes anyway.
                "spec": _job_spec(
                    labels,
                    container,
                    backoff_limit=0,
                    deadline_seconds=1800,
                    ttl_seconds=settings.job_ttl_seconds,
                ),
            },
        },
    }
    return _with_hash(manifest, manifest["spec"])
