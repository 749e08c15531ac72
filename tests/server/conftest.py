"""Fixtures for server tests: real trained versions and real server processes."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from loanops.artifacts import LoadedModel, load_model
from loanops.model import FAMILIES
from loanops.server.schemas import EXAMPLE_APPLICATION
from loanops.trainer.training import TrainingOutcome, train
from tests.conftest import free_port, small_config, wait_for_http

APPLICATION: dict[str, Any] = dict(EXAMPLE_APPLICATION)


@pytest.fixture(scope="session")
def family_versions(mlflow_server: str, synthetic_csv: Path) -> dict[str, TrainingOutcome]:
    """One small version per estimator family, registered in MLflow."""
    return {
        family: train(
            small_config(
                str(synthetic_csv),
                f"server-{family}",
                tracking_uri=mlflow_server,
                families=(family,),
                max_evals=1,
                cv_folds=2,
            )
        )
        for family in FAMILIES
    }


@pytest.fixture(scope="session")
def served_version(family_versions: dict[str, TrainingOutcome]) -> TrainingOutcome:
    """The XGBoost version, the one most server tests run against."""
    return family_versions["xgboost"]


@pytest.fixture(scope="session")
def loaded_models(family_versions: dict[str, TrainingOutcome]) -> dict[str, LoadedModel]:
    """Each family's version loaded in this process."""
    return {
        family: load_model(f"models:/{outcome.model_name}/{outcome.version}")
        for family, outcome in family_versions.items()
    }


class RunningServer:
    """A ``loanops serve`` process on loopback."""

    def __init__(self, process: subprocess.Popen[bytes], url: str, log: Path) -> None:
        self.process = process
        self.url = url
        self.log = log

    def terminate(self, timeout: float = 30) -> int:
        """Send SIGTERM and wait for the process to exit; return its code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)


@contextmanager
def run_server(
    loanops_command: list[str], model_uri: str, workdir: Path, *options: str, **env: str
) -> Iterator[RunningServer]:
    """Start ``loanops serve`` and yield it once /readyz answers 200."""
    port = free_port()
    log = workdir / f"server-{port}.log"
    handle = log.open("wb")
    command = [*loanops_command, "serve", "--model", model_uri, "--port", str(port)]
    command += ["--spool-dir", str(workdir / "spool"), *options]
    process = subprocess.Popen(
        command,
        stdout=handle,
        stderr=subprocess.STDOUT,
        env={**os.environ, **env},
    )
    server = RunningServer(process, f"http://127.0.0.1:{port}", log)
    try:
        wait_for_http(f"{server.url}/readyz", timeout=120, process=process)
        yield server
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        handle.close()


@pytest.fixture(scope="module")
def server(
    loanops_command: list[str],
    served_version: TrainingOutcome,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RunningServer]:
    """A server of the XGBoost version, logging predictions to a directory."""
    workdir = tmp_path_factory.mktemp("server")
    model_uri = f"models:/{served_version.model_name}@challenger"
    with run_server(
        loanops_command,
        model_uri,
        workdir,
        "--prediction-log", str(workdir / "log"),
        "--max-batch-size", "50",
    ) as running:  # fmt: skip
        yield running
