"""Fixtures for trainer tests: generated data files and a small trained version."""

from __future__ import annotations

from pathlib import Path

import pytest

from loanops.trainer.training import TrainingOutcome, train
from tests.conftest import small_config

__all__ = ["small_config"]


@pytest.fixture(scope="session")
def trained(mlflow_server: str, synthetic_csv: Path) -> TrainingOutcome:
    """One version trained on generated data and registered in MLflow."""
    return train(small_config(str(synthetic_csv), "trainer-fixture", tracking_uri=mlflow_server))
