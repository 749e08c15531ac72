"""The one-machine loop: generate or take data, train, promote, then serve.

``loanops quickstart`` runs the same trainer and server as a cluster does,
with a local MLflow store (SQLite and an artifact folder) under one home
folder, so the whole loop is visible with nothing to configure. A second run
reuses the store: it trains a new version, applies the promotion policy and
serves whichever version is the champion.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import mlflow
from rich.console import Console

from loanops.promotion import CHAMPION, PromotionDecision, PromotionPolicy, promote_version
from loanops.trainer.synthetic import generate
from loanops.trainer.training import TrainingConfig, TrainingOutcome, train

logger = logging.getLogger(__name__)

MODEL_NAME = "loan-approval"
# Small enough to finish in about a minute on two cores, large enough to
# give a model worth serving.
QUICKSTART_ROWS = 8000
QUICKSTART_EVALS = 6


@dataclass(frozen=True, slots=True)
class QuickstartResult:
    """What the quickstart trained and what it will serve."""

    outcome: TrainingOutcome
    decision: PromotionDecision
    champion_uri: str
    tracking_uri: str
    home: Path


def prepare_store(home: Path) -> str:
    """Create the local MLflow store under ``home``; return its tracking URI."""
    home.mkdir(parents=True, exist_ok=True)
    tracking_uri = f"sqlite:///{home.resolve() / 'mlflow.db'}"
    mlflow.set_tracking_uri(tracking_uri)
    client = mlflow.MlflowClient()
    if client.get_experiment_by_name(MODEL_NAME) is None:
        # Artifacts beside the database, not in ./mlruns of the current folder.
        client.create_experiment(
            MODEL_NAME, artifact_location=(home / "artifacts").resolve().as_uri()
        )
    return tracking_uri


def run_quickstart(
    *, data: str | None, home: Path, seed: int, console: Console | None = None
) -> QuickstartResult:
    """Train and promote one version in the local store under ``home``."""
    tracking_uri = prepare_store(home)
    if data is None:
        generated = home / "data" / "applications.csv"
        if not generated.exists():
            generated.parent.mkdir(parents=True, exist_ok=True)
            generate(QUICKSTART_ROWS, seed=seed).to_csv(generated, index=False)
            logger.info("Generated %d synthetic applications in %s.", QUICKSTART_ROWS, generated)
        data = str(generated)

    previous_runs = len(mlflow.search_runs(experiment_names=[MODEL_NAME]))
    outcome = train(
        TrainingConfig(
            data_uri=data,
            tracking_uri=tracking_uri,
            model_name=MODEL_NAME,
            families=("xgboost",),
            max_evals=QUICKSTART_EVALS,
            cv_folds=3,
            # Each run searches from another seed, so a second run can win.
            seed=seed + previous_runs,
        ),
        console=console,
    )
    _, decision = promote_version(
        mlflow.MlflowClient(),
        model_name=MODEL_NAME,
        version=outcome.version,
        policy=PromotionPolicy(),
    )
    champion = mlflow.MlflowClient().get_model_version_by_alias(MODEL_NAME, CHAMPION).version
    return QuickstartResult(
        outcome=outcome,
        decision=decision,
        champion_uri=f"models:/{MODEL_NAME}/{champion}",
        tracking_uri=tracking_uri,
        home=home,
    )
