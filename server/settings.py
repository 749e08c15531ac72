"""Settings of the prediction server, one typed object built once at startup.

``loanops serve`` fills it from its options (each also readable from a
``LOANOPS_`` environment variable); tests build it directly.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class PredictionLogSettings(BaseModel):
    """Where and how scored applications are recorded for drift checks."""

    model_config = ConfigDict(frozen=True)

    uri: str | None = Field(None, description="Directory or s3:// prefix of shipped chunks.")
    spool_dir: Path = Field(
        Path(".loanops/spool"), description="Local folder of unshipped segments."
    )
    max_records: int = Field(1000, ge=1, description="Records per chunk before it is shipped.")
    max_age_seconds: float = Field(
        60.0, gt=0, description="Age (s) at which a non-empty chunk is shipped anyway."
    )


class ServerSettings(BaseModel):
    """Everything the prediction server needs to start."""

    model_config = ConfigDict(frozen=True)

    model_uri: str = Field(description="models:/NAME/VERSION, models:/NAME@ALIAS or a path.")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    api_token: SecretStr | None = Field(
        None, description="Bearer token required on prediction paths; none disables auth."
    )
    max_batch_size: int = Field(500, ge=1, description="Applications per /predict/batch call.")
    max_body_bytes: int = Field(
        1_048_576, ge=1024, description="Largest request body accepted (bytes); 1 MiB fits 500."
    )
    prediction_threads: int = Field(
        1, ge=1, description="Estimator threads per prediction; 1 is fastest for small requests."
    )
    approval_window: int = Field(
        1000, ge=1, description="Decisions the rolling approval-rate gauge averages over."
    )
    top_reasons: int = Field(3, ge=0, le=9, description="Reasons listed with each decision.")
    prediction_log: PredictionLogSettings = PredictionLogSettings()
