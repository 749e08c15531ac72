"""``loanops train`` and ``loanops promote`` as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient


def run(command: list[str], *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI with a clean environment plus ``env``; capture its output."""
    environment = {**os.environ, "COLUMNS": "200", **env}
    return subprocess.run(
        [*command, *args], capture_output=True, text=True, timeout=300, env=environment
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert fragment in result.stderr, result.stderr


def test_train_and_promote_from_the_command_line(
    loanops_command: list[str], mlflow_server: str, synthetic_csv: Path, tmp_path: Path
) -> None:
    outcome_file = tmp_path / "outcome.json"
    trained = run(
        loanops_command,
        "train",
        "--data", str(synthetic_csv),
        "--families", "xgboost",
        "--max-evals", "1",
        "--outcome-file", str(outcome_file),
        LOANOPS_TRACKING_URI=mlflow_server,
        LOANOPS_MODEL_NAME="cli-model",
    )  # fmt: skip

    assert trained.returncode == 0, trained.stderr
    assert "eval_roc_auc" in trained.stdout
    assert "cli-model version" in trained.stdout
    assert '"model_name":"cli-model"' in outcome_file.read_text()

    promoted = run(
        loanops_command, "promote", "--model-name", "cli-model", "--minimum", "0.5",
        LOANOPS_TRACKING_URI=mlflow_server,
    )  # fmt: skip

    assert promoted.returncode == 0, promoted.stderr
    assert "promoted to champion" in promoted.stdout

    # A retraining on data the champion was trained on stops before tuning
    # and says so in the outcome, registering nothing.
    data_hash = json.loads(outcome_file.read_text())["data_hash"]
    skipped = run(
        loanops_command, "train", "--data", str(synthetic_csv), "--model-name", "cli-model",
        "--skip-if-data-hash", data_hash, "--outcome-file", str(outcome_file),
        LOANOPS_TRACKING_URI=mlflow_server,
    )  # fmt: skip
    assert skipped.returncode == 0, skipped.stderr
    assert "Training skipped" in skipped.stdout + skipped.stderr
    outcome = json.loads(outcome_file.read_text())
    assert outcome["skipped"] is True
    assert outcome["data_hash"] == data_hash
    assert "unchanged since the champion" in outcome["reason"]
    versions = MlflowClient(mlflow_server).search_model_versions("name='cli-model'")
    assert [v.version for v in versions] == ["1"]


@pytest.mark.parametrize(
    ("arguments", "fragment"),
    [
        (["--families", "lightgbm"], "--families 'lightgbm' names unknown families ['lightgbm']"),
        (["--objective", "accuracy"], "--objective 'accuracy' is unknown; accepted: roc_auc"),
    ],
)
def test_bad_options_are_one_line_errors(
    loanops_command: list[str],
    mlflow_server: str,
    synthetic_csv: Path,
    arguments: list[str],
    fragment: str,
) -> None:
    result = run(
        loanops_command, "train", "--data", str(synthetic_csv), *arguments,
        LOANOPS_TRACKING_URI=mlflow_server,
    )  # fmt: skip

    assert_one_line_error(result, fragment)


def test_missing_file_is_a_one_line_error(
    loanops_command: list[str], mlflow_server: str, tmp_path: Path
) -> None:
    result = run(
        loanops_command, "train", "--data", str(tmp_path / "absent.csv"),
        LOANOPS_TRACKING_URI=mlflow_server,
    )  # fmt: skip

    assert_one_line_error(result, "nothing exists at")
    assert "absent.csv" in result.stderr


def test_missing_columns_are_named(
    loanops_command: list[str], mlflow_server: str, synthetic_frame: pd.DataFrame, tmp_path: Path
) -> None:
    path = tmp_path / "no-label.csv"
    synthetic_frame.drop(columns=["loan_status"]).to_csv(path, index=False)

    result = run(loanops_command, "train", "--data", str(path), LOANOPS_TRACKING_URI=mlflow_server)

    assert_one_line_error(result, "lacks the required column(s) loan_status")


def test_unreachable_tracking_server_is_named(
    loanops_command: list[str], synthetic_csv: Path
) -> None:
    result = run(
        loanops_command, "train", "--data", str(synthetic_csv),
        "--tracking-uri", "http://127.0.0.1:9",
        MLFLOW_HTTP_REQUEST_MAX_RETRIES="0",
    )  # fmt: skip

    assert_one_line_error(result, "the MLflow tracking server at 'http://127.0.0.1:9' did not")


def test_debug_shows_the_traceback(loanops_command: list[str], tmp_path: Path) -> None:
    result = run(
        loanops_command, "--debug", "train", "--data", str(tmp_path / "absent.csv"),
        "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
    )  # fmt: skip

    assert result.returncode != 0
    assert "Traceback" in result.stderr


def test_refused_s3_credentials_are_named(loanops_command: list[str], tmp_path: Path) -> None:
    from tests.conftest import free_port, stop, wait_for_http

    # A second moto server with authentication on: unknown keys are refused.
    port = free_port()
    moto = subprocess.Popen(
        [
            str(Path(loanops_command[0]).with_name("moto_server")),
            "-H",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        env={**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "0"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/moto-api/", timeout=30, process=moto)
        result = run(
            loanops_command, "train", "--data", "s3://bank/applications.csv",
            "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
            LOANOPS_S3_ENDPOINT=f"http://127.0.0.1:{port}",
            AWS_ACCESS_KEY_ID="AKIAUNKNOWNUNKNOWN00", AWS_SECRET_ACCESS_KEY="wrong",
        )  # fmt: skip
    finally:
        stop(moto)

    assert_one_line_error(result, "the credentials were refused for 's3://bank/applications.csv'")
