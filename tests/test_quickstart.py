"""The one-machine loop: ``loanops generate`` and ``loanops quickstart``."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from loanops.errors import ConfigurationError
from loanops.trainer.synthetic import Shift, generate
from tests.conftest import REAL_TRAIN_CSV, free_port, wait_for_http

NUMERIC = (
    "person_age",
    "person_income",
    "person_emp_length",
    "loan_amnt",
    "loan_percent_income",
    "cb_person_cred_hist_length",
)
CATEGORICAL = ("person_home_ownership", "loan_intent", "cb_person_default_on_file")


def readme_request(path: str) -> tuple[str, Any]:
    """Return the URL and JSON body of the README's curl example for ``path``."""
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for block in text.split("```bash")[1:]:
        command = block.split("```", 1)[0].replace("\\\n", " ").strip()
        words = shlex.split(command)
        if words[0] == "curl" and any(w.split("?")[0].endswith(path) for w in words):
            url = next(w for w in words if w.startswith("http"))
            return url, json.loads(words[-1])
    raise AssertionError(f"the README has no curl example for {path}")


@pytest.mark.parametrize("seed", [0, 1])
def test_generated_marginals_match_the_real_data(seed: int) -> None:
    if not REAL_TRAIN_CSV.exists():
        pytest.skip(f"real S4E10 data not found at {REAL_TRAIN_CSV}")
    real = pd.read_csv(REAL_TRAIN_CSV)
    fake = generate(30_000, seed=seed)

    assert list(fake.columns) == list(real.columns)
    assert fake["loan_status"].mean() == pytest.approx(real["loan_status"].mean(), abs=0.01)
    for name in CATEGORICAL:
        shares = real[name].value_counts(normalize=True)
        generated = fake[name].value_counts(normalize=True)
        for category, share in shares.items():
            assert generated.get(category, 0.0) == pytest.approx(share, abs=0.02), (name, category)
    for name in NUMERIC:
        for quantile in (0.25, 0.5, 0.75):
            expected = real[name].quantile(quantile)
            assert fake[name].quantile(quantile) == pytest.approx(expected, rel=0.10), (
                name,
                quantile,
            )


def test_generator_is_seeded() -> None:
    pd.testing.assert_frame_equal(generate(500, seed=3), generate(500, seed=3))
    assert not generate(500, seed=3).equals(generate(500, seed=4))


def test_shifts_move_the_named_fields_only() -> None:
    base = generate(20_000, seed=5)
    shifted = generate(
        20_000,
        seed=5,
        shift=Shift(scale={"person_income": 0.7}, shares={"loan_intent": {"VENTURE": 1.0}}),
    )

    ratio = shifted["person_income"].median() / base["person_income"].median()
    assert ratio == pytest.approx(0.7, abs=0.02)
    assert set(shifted["loan_intent"]) == {"VENTURE"}
    assert shifted["person_age"].median() == base["person_age"].median()


def test_bad_shift_names_the_field() -> None:
    with pytest.raises(ConfigurationError, match="cannot scale 'loan_intent'"):
        Shift(scale={"loan_intent": 2.0})
    with pytest.raises(ConfigurationError, match=r"mix .* of 'loan_intent' is invalid"):
        Shift(shares={"loan_intent": {"CASINO": 1.0}})


def test_generate_command_writes_parquet_with_a_shift(
    loanops_command: list[str], tmp_path: Path
) -> None:
    output = tmp_path / "shifted.parquet"
    result = subprocess.run(
        [*loanops_command, "generate", "--rows", "300", "--seed", "2",
         "--output", str(output), "--mix", "loan_intent=MEDICAL:1"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    frame = pd.read_parquet(output)
    assert len(frame) == 300
    assert set(frame["loan_intent"]) == {"MEDICAL"}


def test_quickstart_serves_and_a_second_run_applies_the_policy(
    loanops_command: list[str], tmp_path: Path
) -> None:
    home = tmp_path / ".loanops"  # the default --home, relative to the working folder
    port = free_port()
    environment = {**os.environ, "COLUMNS": "200"}
    environment.pop("MLFLOW_TRACKING_URI", None)
    first = subprocess.Popen(
        [*loanops_command, "quickstart", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=environment,
        cwd=tmp_path,
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/readyz", timeout=400, process=first)
        base = f"http://127.0.0.1:{port}"
        url, body = readme_request("/predict")
        answer = httpx.post(url.replace("http://127.0.0.1:8000", base), json=body).json()
        url, body = readme_request("/predict/batch")
        batch = httpx.post(url.replace("http://127.0.0.1:8000", base), json=body).json()
        form = httpx.get(f"{base}/").status_code
        docs = httpx.get(f"{base}/docs").text
    finally:
        first.send_signal(signal.SIGINT)  # Ctrl-C
        output, _ = first.communicate(timeout=60)
    printed = output.decode()

    assert answer["model_version"] == "1"
    assert set(answer) >= {"approved", "default_probability", "approval_probability", "reasons"}
    assert form == 200
    assert batch["count"] == 2
    assert all(decision["reasons"] for decision in batch["decisions"])
    assert "cdn.jsdelivr.net" not in docs, "API docs must not need the internet"
    assert "promoted to champion" in printed
    assert f"curl -s -X POST http://127.0.0.1:{port}/predict" in printed
    assert "Traceback" not in printed
    assert (home / "mlflow.db").exists()
    assert not (tmp_path / "mlruns").exists(), "artifacts must stay under the home folder"
    assert list((home / "predictions").rglob("*.jsonl.gz")), "the prediction was not shipped"

    second = subprocess.run(
        [*loanops_command, "quickstart", "--no-serve"],
        capture_output=True, text=True, timeout=400, env=environment, cwd=tmp_path,
    )  # fmt: skip

    assert second.returncode == 0, second.stderr
    assert "Version 2: eval_roc_auc" in second.stdout
    assert "Champion: models:/loan-approval/" in second.stdout

    # The README's drift command, run from the folder that holds .loanops.
    drift = subprocess.run(
        [*loanops_command, "drift", "--predictions", ".loanops/predictions",
         "--model", "loan-approval", "--tracking-uri", "sqlite:///.loanops/mlflow.db"],
        capture_output=True, text=True, timeout=300, env=environment, cwd=tmp_path,
    )  # fmt: skip

    assert drift.returncode == 0, drift.stderr
    assert "insufficient_data: 3 samples" in drift.stdout


def readme_commands() -> list[str]:
    """The shell commands in the README's ``bash`` blocks, joined across lines."""
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    commands = []
    for block in text.split("```bash")[1:]:
        body = block.split("```", 1)[0]
        commands.append(body.replace("\\\n", " ").strip())
    return commands
