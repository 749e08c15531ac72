"""Model versions as MLflow models: how they are logged and how they are loaded.

A version is an MLflow pyfunc model wrapping one :class:`LoanRiskModel`, with
three JSON files stored beside it: ``loanops.json`` (decision threshold,
family, data hash), ``feature_schema.json`` and the reference profile. The
pyfunc form keeps ``mlflow models serve`` and other MLflow tools working; the
server and drift checks unwrap it and use the model object directly.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from importlib import metadata as package_metadata
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.pyfunc.model import PythonModel

from loanops.errors import RegistryError
from loanops.model import LoanRiskModel
from loanops.profile import PROFILE_ARTIFACT, ReferenceProfile
from loanops.schema import FEATURE_NAMES, schema_dtypes

logger = logging.getLogger(__name__)

METADATA_ARTIFACT = "loanops.json"
SCHEMA_ARTIFACT = "feature_schema.json"
_MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[\w-]+))$")


class LoanRiskPyfunc(PythonModel):
    """The MLflow pyfunc face of a :class:`LoanRiskModel`."""

    def __init__(self, model: LoanRiskModel) -> None:
        self.model = model

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        """Return P(default), P(approval) and the decision for each row."""
        default = self.model.default_probability(model_input)
        return pd.DataFrame(
            {
                "default_probability": default,
                "approval_probability": 1 - default,
                "approved": default < self.model.threshold,
            }
        )


# What a version needs at inference, pinned to the versions it was trained
# with; listing them spares MLflow a slow inference of the environment.
_RUNTIME_PACKAGES = (
    "loanops",
    "mlflow",
    "scikit-learn",
    "xgboost-cpu",
    "catboost",
    "shap",
    "numpy",
    "pandas",
    "scipy",
)


def runtime_requirements() -> list[str]:
    """Return pip requirement lines for the packages a version needs to predict."""
    lines = []
    for name in _RUNTIME_PACKAGES:
        try:
            lines.append(f"{name}=={package_metadata.version(name)}")
        except package_metadata.PackageNotFoundError:
            continue
    return lines


@dataclass(frozen=True, slots=True)
class LoadedModel:
    """A model version ready to score, with what was stored beside it."""

    model: LoanRiskModel
    metadata: dict[str, Any]
    profile: ReferenceProfile | None
    uri: str
    name: str | None
    version: str | None

    @property
    def label(self) -> str:
        """A short name of what is loaded, for logs and responses."""
        if self.name and self.version:
            return f"{self.name}/{self.version}"
        return self.uri


def resolve_model_uri(uri: str, client: Any | None = None) -> tuple[str, str | None, str | None]:
    """Pin ``models:/NAME@ALIAS`` to ``models:/NAME/VERSION``; return (uri, name, version)."""
    match = _MODELS_URI.match(uri)
    if match is None:
        if uri.startswith("models:/"):
            raise RegistryError(
                f"model URI {uri!r} is malformed; accepted: models:/NAME/VERSION, "
                "models:/NAME@ALIAS or a local path."
            )
        return uri, None, None
    name = match["name"]
    if match["version"]:
        return uri, name, match["version"]
    client = client or mlflow.MlflowClient()
    try:
        version = str(client.get_model_version_by_alias(name, match["alias"]).version)
    except Exception as error:
        raise RegistryError(
            f"alias {match['alias']!r} of model {name!r} could not be resolved: "
            f"{str(error).splitlines()[0]}"
        ) from None
    return f"models:/{name}/{version}", name, version


def load_model(uri: str) -> LoadedModel:
    """Load a model version by MLflow URI or local path, pinning aliases."""
    pinned, name, version = resolve_model_uri(uri)
    try:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=pinned))
        pyfunc = mlflow.pyfunc.load_model(str(local))
    except Exception as error:
        raise RegistryError(
            f"model {uri!r} could not be loaded: {str(error).splitlines()[0]}"
        ) from None
    wrapper = pyfunc.unwrap_python_model()
    if not isinstance(wrapper, LoanRiskPyfunc):
        raise RegistryError(f"model {uri!r} is not a loanops model (no LoanRiskPyfunc inside).")
    artifacts = local / "artifacts"
    metadata = json.loads((artifacts / METADATA_ARTIFACT).read_text())
    profile_path = artifacts / PROFILE_ARTIFACT
    profile = (
        ReferenceProfile.from_json(profile_path.read_text()) if profile_path.exists() else None
    )
    return LoadedModel(
        model=wrapper.model,
        metadata=metadata,
        profile=profile,
        uri=pinned,
        name=name,
        version=version,
    )


def log_model(
    model: LoanRiskModel,
    *,
    metadata: dict[str, Any],
    profile: ReferenceProfile,
    schema: list[dict[str, Any]],
    input_example: pd.DataFrame,
    workdir: Path,
    registered_model_name: str | None,
) -> Any:
    """Log ``model`` with its side files to the active run; register it if named."""
    files = {
        "metadata": (workdir / METADATA_ARTIFACT, json.dumps(metadata, indent=2)),
        "schema": (workdir / SCHEMA_ARTIFACT, json.dumps(schema, indent=2)),
        "profile": (workdir / PROFILE_ARTIFACT, profile.to_json()),
    }
    for path, text in files.values():
        path.write_text(text)
    # The signature states integer fields as long and the others as double;
    # MLflow refuses to narrow or widen int64 silently, so the example says it.
    example = input_example.loc[:, list(FEATURE_NAMES)].astype(schema_dtypes())
    wrapper = LoanRiskPyfunc(model)
    signature = mlflow.models.infer_signature(example, wrapper.predict(None, example))
    return mlflow.pyfunc.log_model(
        name="model",
        python_model=wrapper,
        artifacts={key: str(path) for key, (path, _) in files.items()},
        signature=signature,
        input_example=example,
        pip_requirements=runtime_requirements(),
        registered_model_name=registered_model_name,
    )
