"""Settings of the operator process: the defaults of the children it creates.

Read once from ``LOANOPS_OPERATOR_``-prefixed environment variables (the Helm
chart sets them); a LoanModel's own ``image`` and ``resources`` win over them.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

_DEFAULT_TRAINING_RESOURCES: dict[str, Any] = {
    "requests": {"cpu": "1", "memory": "2Gi"},
    "limits": {"memory": "4Gi"},
}
_DEFAULT_SERVING_RESOURCES: dict[str, Any] = {
    "requests": {"cpu": "250m", "memory": "512Mi"},
    "limits": {"memory": "1Gi"},
}


class OperatorSettings(BaseSettings):
    """Operator-wide defaults and timings."""

    model_config = SettingsConfigDict(env_prefix="LOANOPS_OPERATOR_", frozen=True)

    trainer_image: str = Field(
        "ghcr.io/loanops/loanops-trainer:0.1.0", description="Image of training and drift Jobs."
    )
    server_image: str = Field(
        "ghcr.io/loanops/loanops-server:0.1.0", description="Image of prediction servers."
    )
    training_resources: dict[str, Any] = Field(
        default_factory=lambda: dict(_DEFAULT_TRAINING_RESOURCES),
        description="ResourceRequirements of training containers (JSON in the environment).",
    )
    serving_resources: dict[str, Any] = Field(
        default_factory=lambda: dict(_DEFAULT_SERVING_RESOURCES),
        description="ResourceRequirements of server containers (JSON in the environment).",
    )
    drift_resources: dict[str, Any] = Field(
        default_factory=lambda: {"requests": {"cpu": "250m", "memory": "1Gi"}},
        description="ResourceRequirements of drift-check containers (JSON in the environment).",
    )
    resync_seconds: float = Field(
        30.0, gt=0, description="How often every object is reconciled without any event."
    )
    metrics_port: int = Field(8080, ge=0, le=65535, description="Port of /metrics; 0 disables.")
    job_ttl_seconds: int = Field(
        86400, ge=0, description="ttlSecondsAfterFinished of training Jobs."
    )
    retry_base_seconds: float = Field(
        5.0, gt=0, description="First delay after a temporary failure (MLflow unreachable)."
    )
    retry_max_seconds: float = Field(300.0, gt=0, description="Longest delay between retries.")
    history_limit: int = Field(10, ge=1, le=10, description="Promotion decisions kept in status.")
