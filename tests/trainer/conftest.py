"""Fixtures for trainer tests: generated data files and a small trained version."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from loanops.trainer.synthetic import generate
from loanops.trainer.training import TrainingConfig, TrainingOutcome, train


@pytest.fixture(scope="session")
def synthetic_frame() -> pd.DataFrame:
    """Three thousand generated applications, seeded."""
    return generate(3000, seed=7)


@pytest.fixture(scope="session")
def synthetic_csv(synthetic_frame: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The generated applications written as CSV."""
    path = tmp_path_factory.mktemp("data") / "applications.csv"
    synthetic_frame.to_csv(path, index=False)
    return path


def small_config(data_uri: str, model_name: str, **overrides: object) -> TrainingConfig:
    """A training budget small enough for tests: XGBoost, three trials."""
    settings: dict[str, object] = {
        "data_uri": data_uri,
        "model_name": model_name,
        "families": ("xgboost",),
        "max_evals": 3,
        "cv_folds": 3,
        "seed": 11,
        "threads": 1,
    }
    settings.update(overrides)
    return TrainingConfig(**settings)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def trained(mlflow_server: str, synthetic_csv: Path) -> TrainingOutcome:
    """One version trained on generated data and registered in MLflow."""
    return train(small_config(str(synthetic_csv), "trainer-fixture", tracking_uri=mlflow_server))
