"""Training runs end to end against a real MLflow tracking server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
from xgboost import XGBClassifier

from loanops.artifacts import load_model
from loanops.model import calibration_features
from loanops.promotion import CHALLENGER, EVAL_METRICS
from loanops.schema import FEATURE_NAMES, schema_dtypes
from loanops.trainer import search as search_module
from loanops.trainer.search import SearchConfig, cross_validate
from loanops.trainer.training import TrainingOutcome, fit_calibrator, train
from tests.conftest import small_config

from .test_datasets import messy


def test_training_registers_a_challenger_with_metrics(
    trained: TrainingOutcome, mlflow_server: str
) -> None:
    client = mlflow.MlflowClient(mlflow_server)
    version = client.get_model_version_by_alias(trained.model_name, CHALLENGER)
    run = client.get_run(trained.run_id)

    assert version.version == trained.version
    assert set(EVAL_METRICS) <= set(run.data.metrics)
    assert "cv_best_score" in run.data.metrics
    assert run.data.tags["loanops.data_hash"] == trained.data_hash
    assert run.data.tags["loanops.seed"] == "11"
    assert run.data.params["family"] == "xgboost"
    # Generated data carry a real signal: a model that learned nothing scores 0.5.
    assert run.data.metrics["eval_roc_auc"] > 0.75


def test_training_logs_the_diagnostic_plots(trained: TrainingOutcome, mlflow_server: str) -> None:
    client = mlflow.MlflowClient(mlflow_server)
    plots = {Path(item.path).name for item in client.list_artifacts(trained.run_id, "plots")}

    assert {
        "confusion_matrix.png",
        "roc_curve.png",
        "reliability_curve.png",
        "shap_importance.png",
    } <= plots


def test_registered_model_carries_threshold_schema_and_profile(
    trained: TrainingOutcome, mlflow_server: str, synthetic_frame: pd.DataFrame
) -> None:
    loaded = load_model(f"models:/{trained.model_name}@{CHALLENGER}")

    assert loaded.version == trained.version
    assert loaded.metadata["threshold"] == pytest.approx(trained.threshold)
    assert loaded.profile is not None
    assert loaded.profile.rows > 1000
    assert set(loaded.profile.categorical["loan_intent"]) >= {"VENTURE", "EDUCATION"}
    decisions = loaded.model.predict(synthetic_frame.head(50))
    probabilities = loaded.model.predict_proba(synthetic_frame.head(50))[:, 1]
    assert np.array_equal(decisions, (probabilities >= trained.threshold).astype(int))


def test_pyfunc_model_states_both_probabilities(
    trained: TrainingOutcome, mlflow_server: str, synthetic_frame: pd.DataFrame
) -> None:
    pyfunc = mlflow.pyfunc.load_model(f"models:/{trained.model_name}/{trained.version}")

    applications = synthetic_frame.head(5).loc[:, list(FEATURE_NAMES)].astype(schema_dtypes())

    answer = pyfunc.predict(applications)

    assert list(answer.columns) == ["default_probability", "approval_probability", "approved"]
    assert np.allclose(answer["default_probability"] + answer["approval_probability"], 1.0)


def test_same_data_and_seed_give_the_same_result(
    mlflow_server: str, synthetic_csv: Path, trained: TrainingOutcome
) -> None:
    again = train(small_config(str(synthetic_csv), "trainer-fixture", tracking_uri=mlflow_server))

    assert again.params == trained.params
    assert again.metrics == trained.metrics
    assert again.version != trained.version


def test_s3_data_give_the_same_result_as_local(
    mlflow_server: str, synthetic_csv: Path, s3_bucket: str, trained: TrainingOutcome
) -> None:
    import s3fs

    s3fs.S3FileSystem().put(str(synthetic_csv), f"{s3_bucket}/applications.csv")

    remote = train(
        small_config(f"s3://{s3_bucket}/applications.csv", "trainer-s3", tracking_uri=mlflow_server)
    )

    assert remote.data_hash == trained.data_hash
    assert remote.params == trained.params
    assert remote.metrics == trained.metrics


def test_messy_file_trains_on_good_rows_and_reports_drops(
    mlflow_server: str, synthetic_frame: pd.DataFrame, tmp_path: Path
) -> None:
    path = tmp_path / "messy.csv"
    messy(synthetic_frame).to_csv(path, index=False)

    outcome = train(
        small_config(str(path), "trainer-messy", tracking_uri=mlflow_server, max_evals=1)
    )

    assert outcome.rows == len(synthetic_frame)
    assert outcome.dropped["exact duplicate"] == 2
    metrics = mlflow.MlflowClient(mlflow_server).get_run(outcome.run_id).data.metrics
    assert metrics["rows_dropped_exact_duplicate"] == 2
    assert metrics["rows_dropped_person_age_above_120"] == 1


class RecordingXGBClassifier(XGBClassifier):  # type: ignore[misc]
    """A real XGBoost classifier that remembers the rows it was given."""

    fits: list[dict[str, Any]] = []  # noqa: RUF012 - shared on purpose, per test

    def fit(self, X: Any, y: Any, **kwargs: Any) -> Any:  # noqa: N803
        RecordingXGBClassifier.fits.append({"fit": X, "stop": kwargs["eval_set"][0][0]})
        return super().fit(X, y, **kwargs)

    def predict_proba(self, X: Any, **kwargs: Any) -> Any:  # noqa: N803
        RecordingXGBClassifier.fits[-1]["scored"] = X
        return super().predict_proba(X, **kwargs)


def test_early_stopping_never_sees_the_scored_fold(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    # Column 0 is a unique row key, so rows can be traced through the folds.
    features = np.column_stack([np.arange(600.0), rng.normal(size=(600, 3))])
    labels = (features[:, 1] + rng.normal(size=600) > 1).astype(np.int64)

    def build(params: dict[str, Any], *, seed: int, threads: int, rounds: int | None = None) -> Any:
        return RecordingXGBClassifier(n_estimators=50, early_stopping_rounds=5, n_jobs=threads)

    monkeypatch.setattr(search_module, "build_estimator", build)
    RecordingXGBClassifier.fits = []
    config = SearchConfig(("xgboost",), 1, 3, "roc_auc", seed=1, threads=1)
    cross_validate({"family": "xgboost"}, features, labels, config)

    assert len(RecordingXGBClassifier.fits) == 3
    for record in RecordingXGBClassifier.fits:
        fit, stop, scored = (set(record[k][:, 0]) for k in ("fit", "stop", "scored"))
        assert not stop & scored, "early stopping watched rows of the scored fold"
        assert not fit & scored
        assert not fit & stop


def test_real_data_train_well_and_calibration_does_no_harm(
    mlflow_server: str, real_train_csv: Path
) -> None:
    outcome = train(
        small_config(str(real_train_csv), "trainer-real", tracking_uri=mlflow_server, max_evals=2)
    )

    metrics = mlflow.MlflowClient(mlflow_server).get_run(outcome.run_id).data.metrics
    assert metrics["eval_roc_auc"] > 0.91
    # An XGBoost fitted on log loss is close to calibrated already; the
    # calibrator may gain little on it but must never cost more than 1 %.
    assert metrics["eval_brier"] < metrics["eval_brier_uncalibrated"] * 1.01


def test_calibrator_repairs_a_miscalibrated_estimator() -> None:
    rng = np.random.default_rng(3)
    truth = rng.beta(0.6, 3.0, size=40_000)
    labels = (rng.random(truth.size) < truth).astype(np.int64)
    # An overconfident estimator: right ranking, probabilities pushed to 0 and 1.
    raw = truth**2.5 / (truth**2.5 + (1 - truth) ** 2.5)
    fit, held = slice(0, 20_000), slice(20_000, None)

    calibrator = fit_calibrator(raw[fit], labels[fit])
    calibrated = calibrator.predict_proba(calibration_features(raw[held]))[:, 1]

    def brier(p: np.ndarray) -> float:
        return float(np.mean((p - labels[held]) ** 2))

    assert brier(calibrated) < brier(raw[held]) - 0.005
    assert brier(calibrated) == pytest.approx(brier(truth[held]), abs=0.002)
