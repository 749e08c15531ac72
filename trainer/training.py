"""One training run, from a data URI to a registered model version.

:func:`train` is what ``loanops train``, the quickstart and the training Job
run: load and validate, split, search, refit the best configuration on the
training split, calibrate and choose the threshold on the calibration split,
evaluate once on the evaluation split, log everything to MLflow, register a
version and point the ``challenger`` alias at it.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import numpy.typing as npt
from rich.console import Console
from sklearn.linear_model import LogisticRegression

from loanops import __version__, artifacts
from loanops.errors import RegistryError
from loanops.explanations import Explainer, global_importance
from loanops.features import ApplicationEncoder
from loanops.model import Family, LoanRiskModel, calibration_features
from loanops.profile import ReferenceProfile
from loanops.promotion import CHALLENGER
from loanops.schema import FEATURE_NAMES, TARGET, describe_schema
from loanops.trainer import evaluation
from loanops.trainer.datasets import Dataset, Splits, load_dataset, split
from loanops.trainer.estimators import build_estimator
from loanops.trainer.search import INNER_VALIDATION_SHARE, Objective, SearchConfig, search

logger = logging.getLogger(__name__)

# Rows of the evaluation split explained for the global SHAP importance plot.
IMPORTANCE_SAMPLE = 500


@dataclass(frozen=True, slots=True)
class TrainingConfig:
    """Everything one training run needs to know."""

    data_uri: str
    tracking_uri: str | None = None
    model_name: str = "loan-approval"
    experiment: str | None = None
    families: tuple[Family, ...] = ("xgboost", "catboost", "random_forest")
    max_evals: int = 20
    cv_folds: int = 3
    objective: Objective = "roc_auc"
    seed: int = 42
    threads: int = field(default_factory=lambda: max(1, os.cpu_count() or 1))
    s3_endpoint: str | None = None
    min_rows: int = 200
    # Stop before tuning when the validated data hashes to this (a retraining
    # asked for on data that has not changed since the champion).
    skip_if_data_hash: str | None = None


@dataclass(slots=True)
class TrainingOutcome:
    """What a run produced; written as the training Job's termination message."""

    run_id: str
    model_name: str
    version: str
    family: str
    threshold: float
    metrics: dict[str, float]
    cv_best_score: float
    data_hash: str
    rows: int
    dropped: dict[str, int]
    params: dict[str, Any]
    seconds: float

    def to_json(self) -> str:
        """Serialise the outcome as compact JSON."""
        return json.dumps(asdict(self), separators=(",", ":"), default=str)


class TrainingSkipped(Exception):  # noqa: N818 - an outcome, not an error
    """The data is unchanged: nothing was trained or registered."""

    def __init__(self, data_hash: str, rows: int) -> None:
        self.data_hash = data_hash
        self.reason = (
            f"the training data ({rows} rows, content hash {data_hash[:12]}) is unchanged "
            "since the champion was trained"
        )
        super().__init__(self.reason)

    def to_json(self) -> str:
        """The skipped outcome, written where a TrainingOutcome would be."""
        message = {"skipped": True, "data_hash": self.data_hash, "reason": self.reason}
        return json.dumps(message, separators=(",", ":"))


def fit_calibrator(
    raw_default: npt.NDArray[np.float64], labels: npt.NDArray[np.int64]
) -> LogisticRegression:
    """Fit beta calibration: a logistic regression on ``[ln p, -ln(1 - p)]``."""
    # C=1e6: effectively unregularised, as the method is defined.
    calibrator = LogisticRegression(C=1e6)
    calibrator.fit(calibration_features(raw_default), labels)
    return calibrator


def refit(
    params: dict[str, Any], rounds: int | None, splits: Splits, config: TrainingConfig
) -> Any:
    """Fit the chosen configuration on the whole training split."""
    if rounds is not None:
        # CV fits saw (k-1)/k of the split less the early-stopping part; grow
        # the number of rounds with the data, as boosting needs more for more.
        seen = (config.cv_folds - 1) / config.cv_folds * (1 - INNER_VALIDATION_SHARE)
        rounds = max(10, round(rounds / seen))
    estimator = build_estimator(params, seed=config.seed, threads=config.threads, rounds=rounds)
    estimator.fit(ApplicationEncoder().transform(splits.train), splits.train[TARGET].to_numpy())
    return estimator


def check_tracking_server(tracking_uri: str | None) -> None:
    """Fail early, with the URI, when the tracking server does not answer."""
    try:
        mlflow.MlflowClient().search_experiments(max_results=1)
    except Exception as error:
        raise RegistryError(
            f"the MLflow tracking server at {tracking_uri or mlflow.get_tracking_uri()!r} "
            f"did not answer: {str(error).splitlines()[0]}"
        ) from None


def train(config: TrainingConfig, *, console: Console | None = None) -> TrainingOutcome:
    """Run one training end to end and return its outcome."""
    started = time.monotonic()
    if config.tracking_uri:
        mlflow.set_tracking_uri(config.tracking_uri)
    check_tracking_server(config.tracking_uri)
    dataset = load_dataset(
        config.data_uri, s3_endpoint=config.s3_endpoint, min_rows=config.min_rows
    )
    if config.skip_if_data_hash and config.skip_if_data_hash == dataset.content_hash:
        raise TrainingSkipped(dataset.content_hash, len(dataset.frame))
    splits = split(dataset.frame, seed=config.seed)
    encoder = ApplicationEncoder()

    search_config = SearchConfig(
        families=config.families,
        max_evals=config.max_evals,
        cv_folds=config.cv_folds,
        objective=config.objective,
        seed=config.seed,
        threads=config.threads,
    )
    result = search(
        encoder.transform(splits.train),
        splits.train[TARGET].to_numpy(),
        search_config,
        console=console,
    )
    logger.info(
        "Search chose %s with CV %s %.4f after %d trials.",
        result.params["family"],
        config.objective,
        result.cv_score,
        result.trials,
    )

    estimator = refit(result.params, result.rounds, splits, config)
    model = LoanRiskModel(
        family=result.params["family"],
        estimator=estimator,
        calibrator=None,
        threshold=0.5,
        params=result.params,
    )
    calibration_labels = splits.calibration[TARGET].to_numpy()
    raw_calibration = model.raw_default_probability(model.encode(splits.calibration))
    model.calibrator = fit_calibrator(raw_calibration, calibration_labels)
    model.threshold = evaluation.choose_threshold(
        calibration_labels, model.calibrate(raw_calibration)
    )

    experiment = config.experiment or config.model_name
    mlflow.set_experiment(experiment)
    with mlflow.start_run() as run, tempfile.TemporaryDirectory() as scratch:
        outcome = _evaluate_and_log(
            model, dataset, splits, result.cv_score, result.trials, config, Path(scratch), run
        )
    outcome.seconds = round(time.monotonic() - started, 1)
    return outcome


def _evaluate_and_log(
    model: LoanRiskModel,
    dataset: Dataset,
    splits: Splits,
    cv_score: float,
    trials: int,
    config: TrainingConfig,
    workdir: Path,
    run: Any,
) -> TrainingOutcome:
    labels = splits.evaluation[TARGET].to_numpy()
    encoded = model.encode(splits.evaluation)
    raw = model.raw_default_probability(encoded)
    calibrated = model.calibrate(raw)
    metrics = evaluation.evaluation_metrics(labels, calibrated, model.threshold)
    metrics["eval_brier_uncalibrated"] = float(np.mean((raw - labels) ** 2))
    metrics["cv_best_score"] = cv_score

    mlflow.log_params(
        {
            "family": model.family,
            **{f"param_{k}": v for k, v in model.params.items() if k != "family"},
            "objective": config.objective,
            "cv_folds": config.cv_folds,
            "max_evals": config.max_evals,
            "families": ",".join(config.families),
            "seed": config.seed,
            "threshold": round(model.threshold, 6),
        }
    )
    mlflow.log_metrics(metrics)
    mlflow.log_metrics({"search_trials": trials, "rows_used": len(dataset.frame)})
    mlflow.log_metrics(
        {f"rows_dropped_{_metric_key(reason)}": count for reason, count in dataset.dropped.items()}
    )
    tags = {
        "loanops.data_hash": dataset.content_hash,
        "loanops.data_rows": str(len(dataset.frame)),
        "loanops.data_uri": dataset.uri,
        "loanops.code_version": __version__,
        "loanops.seed": str(config.seed),
    }
    mlflow.set_tags(tags)
    mlflow.log_dict(dict(dataset.dropped), "data/dropped_rows.json")

    # Diagnostics: plots of the evaluation split and global SHAP importance.
    declined = (calibrated >= model.threshold).astype(int)
    plots = [
        evaluation.plot_confusion_matrix(labels, declined, workdir / "confusion_matrix.png"),
        evaluation.plot_roc(labels, calibrated, workdir / "roc_curve.png"),
        evaluation.plot_reliability(labels, calibrated, raw, workdir / "reliability_curve.png"),
    ]
    explainer = Explainer(model)
    importance = global_importance(explainer, encoded[:IMPORTANCE_SAMPLE])
    plots.append(
        evaluation.plot_importance(importance, explainer.unit, workdir / "shap_importance.png")
    )
    for plot in plots:
        mlflow.log_artifact(str(plot), artifact_path="plots")
    mlflow.log_dict(importance, "plots/shap_importance.json")

    # The profile describes what the version was trained on; the predicted
    # P(default) reference comes from the calibration split, unseen in fitting.
    profile = ReferenceProfile.from_frame(
        splits.train,
        default_probability=model.default_probability(splits.calibration),
        seed=config.seed,
    )
    profile.metadata = {"data_hash": dataset.content_hash, "rows": len(splits.train)}
    metadata = {
        "threshold": model.threshold,
        "family": model.family,
        "params": model.params,
        "data_hash": dataset.content_hash,
        "probability": "P(default): loan_status = 1",
        "explanation_unit": explainer.unit,
        "run_id": run.info.run_id,
    }
    info = artifacts.log_model(
        model,
        metadata=metadata,
        profile=profile,
        schema=describe_schema(),
        input_example=splits.train.loc[:, list(FEATURE_NAMES)].head(5),
        workdir=workdir,
        registered_model_name=config.model_name,
    )
    version = str(info.registered_model_version)
    client = mlflow.MlflowClient()
    client.set_registered_model_alias(config.model_name, CHALLENGER, version)
    for key, value in {**tags, "loanops.threshold": f"{model.threshold:.6f}"}.items():
        client.set_model_version_tag(config.model_name, version, key, value)
    logger.info(
        "Registered %s version %s (run %s) as challenger, eval_roc_auc %.4f.",
        config.model_name,
        version,
        run.info.run_id,
        metrics["eval_roc_auc"],
    )
    return TrainingOutcome(
        run_id=run.info.run_id,
        model_name=config.model_name,
        version=version,
        family=model.family,
        threshold=model.threshold,
        metrics={k: v for k, v in metrics.items() if k.startswith("eval_")},
        cv_best_score=cv_score,
        data_hash=dataset.content_hash,
        rows=len(dataset.frame),
        dropped=dict(dataset.dropped),
        params=model.params,
        seconds=0.0,
    )


def _metric_key(reason: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in reason).strip("_")
