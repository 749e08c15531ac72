"""The LoanModel and DriftPolicy resources: names, labels and typed specs.

The CRDs in ``crds/`` validate and default what users apply; the models here
give the operator typed access to the same fields with the same defaults (a
test keeps the two in step), because an object read before defaulting, or from
an API server that does not default, must still mean the same thing.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

GROUP = "loanops.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
LOANMODELS = "loanmodels"
DRIFTPOLICIES = "driftpolicies"

RETRAIN_ANNOTATION = "loanops.io/retrain"
APPROVE_ANNOTATION = "loanops.io/approve"
LOANMODEL_LABEL = "loanops.io/loanmodel"
DRIFTPOLICY_LABEL = "loanops.io/driftpolicy"
REQUEST_LABEL = "loanops.io/training-request"
MANAGED_BY = {"app.kubernetes.io/managed-by": "loanops"}

SERVER_COMPONENT = "loanops-server"
TRAINER_COMPONENT = "loanops-trainer"
DRIFT_COMPONENT = "loanops-drift"
SERVER_PORT = 8000


class _Spec(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class SecretKeys(_Spec):
    """A Secret of S3 credentials, read through secretKeyRef."""

    name: str
    access_key_id_key: str = "AWS_ACCESS_KEY_ID"
    secret_access_key_key: str = "AWS_SECRET_ACCESS_KEY"


class MlflowSecret(_Spec):
    """A Secret of MLflow basic-auth credentials."""

    name: str
    username_key: str = "MLFLOW_TRACKING_USERNAME"
    password_key: str = "MLFLOW_TRACKING_PASSWORD"


class TokenSecret(_Spec):
    """A Secret holding the servers' bearer token."""

    name: str
    key: str = "token"


class DataSpec(_Spec):
    uri: str
    s3_endpoint: str | None = None
    credentials_secret: SecretKeys | None = None


class MlflowSpec(_Spec):
    tracking_uri: str
    model_name: str
    credentials_secret: MlflowSecret | None = None


class TrainingSpec(_Spec):
    families: list[str] = Field(default_factory=lambda: ["xgboost", "catboost", "random_forest"])
    max_evals: int = 20
    cv_folds: int = 3
    objective: str = "roc_auc"
    seed: int = 42
    image: str | None = None
    resources: dict[str, Any] | None = None
    deadline_seconds: int = 7200
    backoff_limit: int = 1
    schedule: str | None = None


class PromotionSpec(_Spec):
    mode: Literal["Auto", "Manual", "DryRun"] = "Auto"
    metric: str = "eval_roc_auc"
    minimum: float | None = None
    min_improvement: float = 0.0


class PredictionLogSpec(_Spec):
    uri: str
    s3_endpoint: str | None = None
    credentials_secret: SecretKeys | None = None


class ServingSpec(_Spec):
    replicas: int = 2
    image: str | None = None
    resources: dict[str, Any] | None = None
    api_key_secret: TokenSecret | None = None
    pinned_version: str | None = None
    prediction_log: PredictionLogSpec | None = None


class LoanModelSpec(_Spec):
    """``spec`` of a LoanModel."""

    data: DataSpec
    mlflow: MlflowSpec
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    promotion: PromotionSpec = Field(default_factory=PromotionSpec)
    serving: ServingSpec = Field(default_factory=ServingSpec)

    def training_digest(self) -> str:
        """A digest of every field that changes what a training produces."""
        relevant = {
            "data": self.data.model_dump(mode="json"),
            "mlflow": self.mlflow.model_dump(mode="json", exclude={"credentials_secret"}),
            "training": self.training.model_dump(mode="json", exclude={"schedule"}),
        }
        return digest(relevant)


class ModelRef(_Spec):
    name: str


class DriftThresholdsSpec(_Spec):
    alpha: float = 0.01
    psi: float = 0.2


class DriftPolicySpec(_Spec):
    """``spec`` of a DriftPolicy."""

    model_ref: ModelRef
    schedule: str
    window_hours: float = 24.0
    min_samples: int = 200
    thresholds: DriftThresholdsSpec = Field(default_factory=DriftThresholdsSpec)
    action: Literal["Retrain", "Alert"] = "Alert"
    cooldown_hours: float = 24.0
    max_retrains_per_window: int = 1
    retrain_window_hours: float = 168.0
    image: str | None = None
    resources: dict[str, Any] | None = None


def digest(value: Any, length: int = 10) -> str:
    """A short, stable digest of a JSON-serialisable value."""
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:length]


def child_name(owner: str, suffix: str) -> str:
    """A DNS-1123 name for a child object, unique per owner and suffix.

    Long owner names are cut and given a digest so two long names that share
    a prefix still get different children.
    """
    limit = 63 - len(suffix) - 1
    if len(owner) > limit:
        owner = f"{owner[: limit - 7]}-{digest(owner, 6)}"
    return f"{owner}-{suffix}"


def owner_reference(body: dict[str, Any]) -> dict[str, Any]:
    """An ownerReference to ``body`` that makes it the controller of a child."""
    return {
        "apiVersion": body.get("apiVersion", API_VERSION),
        "kind": body["kind"],
        "name": body["metadata"]["name"],
        "uid": body["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def child_metadata(
    owner: dict[str, Any],
    name: str,
    labels: dict[str, str],
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Metadata of a child: in its owner's namespace, controlled by its owner."""
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": owner["metadata"]["namespace"],
        "labels": labels,
    }
    if annotations:
        metadata["annotations"] = annotations
    metadata["ownerReferences"] = [owner_reference(owner)]
    return metadata


def labels_for(owner: str, component: str) -> dict[str, str]:
    """The labels every child of a LoanModel carries."""
    return {
        **MANAGED_BY,
        "app.kubernetes.io/name": component,
        "app.kubernetes.io/instance": owner,
        LOANMODEL_LABEL: owner,
    }
