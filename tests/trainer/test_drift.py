"""The drift check: statistics, decision rule and ``loanops drift`` end to end."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from loanops.profile import NumericProfile, ReferenceProfile
from loanops.schema import FEATURE_NAMES
from loanops.trainer.drift import DriftThresholds, check_drift, numeric_psi, psi
from loanops.trainer.synthetic import Shift, generate
from loanops.trainer.training import TrainingOutcome
from tests.conftest import ship_predictions


def test_psi_counts_values_beyond_the_reference_range() -> None:
    profile = NumericProfile(
        edges=[10.0, 20.0], shares=[0.25, 0.5, 0.25], minimum=0, maximum=30, mean=15, sample=[]
    )

    # Bins (-inf, 10], (10, 20], (20, inf): 100 and 200 lie past the maximum
    # seen in training and must land in the top bin, not vanish.
    value = numeric_psi(profile, [5, 15, 15, 25, 100, 200])

    expected = psi([0.25, 0.5, 0.25], [1 / 6, 2 / 6, 3 / 6])
    assert value == pytest.approx(0.274653, abs=1e-6)
    assert value == pytest.approx(expected)


def test_psi_of_identical_shares_is_zero() -> None:
    assert psi([0.2, 0.3, 0.5], [0.2, 0.3, 0.5]) == 0.0


def records_of(frame: pd.DataFrame, version: str = "1") -> list[dict[str, Any]]:
    inputs = frame.loc[:, list(FEATURE_NAMES)].to_dict("records")
    return [
        {"time": time.time(), "model_version": version, "inputs": row, "default_probability": 0.1}
        for row in inputs
    ]


@pytest.fixture(scope="module")
def reference() -> ReferenceProfile:
    return ReferenceProfile.from_frame(generate(20_000, seed=1))


@pytest.mark.parametrize("seed", [2, 3, 4])
def test_same_population_is_not_drift(reference: ReferenceProfile, seed: int) -> None:
    report = check_drift(records_of(generate(2000, seed=seed)), reference)

    assert report.verdict == "no_drift", report.drifted_fields


@pytest.mark.parametrize(
    ("shift", "moved"),
    [
        (Shift(scale={"person_income": 0.7}), "person_income"),
        (Shift(shares={"loan_intent": {"VENTURE": 1.0}}), "loan_intent"),
        (Shift(scale={"person_age": 1.5}), "person_age"),
    ],
)
def test_shifted_population_is_drift_naming_the_field(
    reference: ReferenceProfile, shift: Shift, moved: str
) -> None:
    report = check_drift(records_of(generate(500, seed=9, shift=shift)), reference)

    assert report.verdict == "drift"
    assert moved in report.drifted_fields


def test_too_few_samples_is_its_own_outcome(reference: ReferenceProfile) -> None:
    shifted = generate(50, seed=9, shift=Shift(scale={"person_income": 0.3}))

    report = check_drift(records_of(shifted), reference, DriftThresholds(min_samples=200))

    assert report.verdict == "insufficient_data"
    assert report.summary() == "insufficient_data: 50 samples"


def test_drift_command_reads_server_chunks_from_s3(
    loanops_command: list[str],
    trained: TrainingOutcome,
    mlflow_server: str,
    s3_bucket: str,
    tmp_path: Path,
) -> None:
    def ship(frame: pd.DataFrame, prefix: str) -> None:
        ship_predictions(
            trained,
            frame,
            uri=f"s3://{s3_bucket}/{prefix}",
            spool_dir=tmp_path / prefix,
            max_records=250,
        )

    ship(generate(1000, seed=21), "steady")
    ship(generate(1000, seed=22, shift=Shift(scale={"person_income": 0.6})), "shifted")

    def drift(prefix: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any], str]:
        output, summary = tmp_path / f"{prefix}.json", tmp_path / f"{prefix}.txt"
        result = subprocess.run(
            [*loanops_command, "drift", "--predictions", f"s3://{s3_bucket}/{prefix}",
             "--model", trained.model_name, "--tracking-uri", mlflow_server, "--hours", "1",
             "--output", str(output), "--termination-file", str(summary)],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        return result, json.loads(output.read_text()), json.loads(summary.read_text())

    _, steady, steady_summary = drift("steady")
    _, shifted, shifted_summary = drift("shifted")

    assert steady["samples"] == 1000
    assert steady["verdict"] == "no_drift", steady["drifted_fields"]
    assert steady["model_versions"] == [trained.version]
    # The termination message the operator reads: verdict, counts and PSI per field.
    assert steady_summary["verdict"] == "no_drift"
    assert steady_summary["samples"] == 1000
    assert steady_summary["versions"] == [trained.version]
    assert steady_summary["summary"] == "no_drift: 1000 samples; drifted: -"
    assert set(steady_summary["psi"]) == {r["field"] for r in steady["fields"]}
    assert shifted["verdict"] == "drift"
    assert "person_income" in shifted["drifted_fields"]
    assert shifted_summary["summary"].startswith("drift: 1000 samples; drifted: ")
    assert "person_income" in shifted_summary["drifted"]
    assert shifted_summary["psi"]["person_income"] >= 0.2
    for result in shifted["fields"]:
        assert {"field", "psi", "test", "statistic", "p_value", "drifted"} <= set(result)


def test_drift_of_an_empty_window_is_insufficient_data(
    loanops_command: list[str], tmp_path: Path
) -> None:
    (tmp_path / "log").mkdir()
    result = subprocess.run(
        [*loanops_command, "drift", "--predictions", str(tmp_path / "log"), "--model", "any",
         "--output", str(tmp_path / "report.json")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "report.json").read_text())["verdict"] == "insufficient_data"


def test_drift_of_a_missing_log_is_an_error(loanops_command: list[str], tmp_path: Path) -> None:
    result = subprocess.run(
        [*loanops_command, "drift", "--predictions", str(tmp_path / "nowhere"), "--model", "x"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip

    assert result.returncode == 2
    assert "no prediction log exists at" in result.stderr
