"""Session fixtures that start the real parts the tests run against.

A real MLflow tracking server (``mlflow server``, SQLite store, local artifact
folder) and a real S3 endpoint (moto's server mode) listen on loopback for the
whole session; both are stopped when it ends.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest

from loanops.trainer.synthetic import generate
from loanops.trainer.training import TrainingConfig, TrainingOutcome

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
REAL_TRAIN_CSV = SHARED_DATA / "s4e10_train.csv"
REAL_TEST_CSV = SHARED_DATA / "s4e10_test.csv"

# Dummy credentials for moto; set before any boto client is built.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")


def free_port() -> int:
    """Return a TCP port that is free on loopback right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_http(
    url: str, *, timeout: float, process: subprocess.Popen[bytes] | None = None
) -> None:
    """Poll ``url`` until it answers 200, failing if ``process`` exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process serving {url} exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer 200 within {timeout} s")


def stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate a child process, killing it if it lingers."""
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real MLflow tracking server on loopback; yields its URI."""
    root = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    mlflow_command = Path(sys.executable).with_name("mlflow")
    log = (root / "server.log").open("wb")
    process = subprocess.Popen(
        [
            str(mlflow_command),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--backend-store-uri",
            f"sqlite:///{root / 'mlflow.db'}",
            "--artifacts-destination",
            str(root / "artifacts"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    uri = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{uri}/health", timeout=120, process=process)
        os.environ["MLFLOW_TRACKING_URI"] = uri
        yield uri
    finally:
        stop(process)
        log.close()


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real S3 endpoint (moto's server mode) on loopback; yields its URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port())
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    # Every S3 client of the session, ours and the tests', goes to moto.
    os.environ["LOANOPS_S3_ENDPOINT"] = endpoint
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    try:
        yield endpoint
    finally:
        server.stop()
        os.environ.pop("LOANOPS_S3_ENDPOINT", None)
        os.environ.pop("AWS_ENDPOINT_URL", None)


@pytest.fixture
def s3_bucket(s3_endpoint: str, request: pytest.FixtureRequest) -> str:
    """A fresh, empty bucket on the moto endpoint; yields its name."""
    import s3fs

    name = "t-" + "".join(c for c in request.node.name.lower() if c.isalnum())[:40]
    filesystem = s3fs.S3FileSystem(client_kwargs={"endpoint_url": s3_endpoint})
    if not filesystem.exists(name):
        filesystem.mkdir(name)
    return name


@pytest.fixture(scope="session")
def real_train_csv() -> Path:
    """The real S4E10 training file, or a skip when shared/data is absent."""
    if not REAL_TRAIN_CSV.exists():
        pytest.skip(f"real S4E10 data not found at {REAL_TRAIN_CSV}")
    return REAL_TRAIN_CSV


@pytest.fixture(scope="session")
def loanops_command() -> list[str]:
    """The installed ``loanops`` console script, as a command prefix."""
    script = Path(sys.executable).with_name("loanops")
    assert script.exists() or shutil.which("loanops"), "the loanops entry point is not installed"
    return [str(script)]


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


def ship_predictions(
    outcome: TrainingOutcome,
    frame: pd.DataFrame,
    *,
    uri: str,
    spool_dir: Path,
    max_records: int,
) -> None:
    """Score ``frame`` with ``outcome``'s version and ship it as the server logs it.

    The records go through the server's own prediction logger, so drift checks
    read exactly what a serving replica would have written.
    """
    from loanops.artifacts import load_model
    from loanops.schema import FEATURE_NAMES, schema_dtypes
    from loanops.server.predictions import PredictionLog
    from loanops.server.settings import PredictionLogSettings

    loaded = load_model(f"models:/{outcome.model_name}/{outcome.version}")
    log = PredictionLog(
        PredictionLogSettings(uri=uri, spool_dir=spool_dir, max_records=max_records)
    )
    log.start()
    probability = loaded.model.default_probability(frame)
    rows = frame.loc[:, list(FEATURE_NAMES)].astype(schema_dtypes()).to_dict("records")
    log.append(
        {
            "time": time.time(),
            "model_name": outcome.model_name,
            "model_version": outcome.version,
            "inputs": row,
            "default_probability": float(p),
        }
        for row, p in zip(rows, probability, strict=True)
    )
    log.close()
