"""Server operations: auth, start-up refusal, metrics at rest, the prediction log."""

from __future__ import annotations

import gzip
import json
import math
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import s3fs

from loanops.trainer.training import TrainingOutcome

from .conftest import APPLICATION, run_server


def model_uri(version: TrainingOutcome) -> str:
    return f"models:/{version.model_name}/{version.version}"


def test_token_guards_prediction_paths_only(
    loanops_command: list[str], served_version: TrainingOutcome, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("s3cret-token\n")
    with run_server(
        loanops_command, model_uri(served_version), tmp_path, "--api-token-file", str(token_file)
    ) as server:
        url = server.url
        anonymous = httpx.post(f"{url}/predict", json=APPLICATION)
        wrong = httpx.post(
            f"{url}/predict", json=APPLICATION, headers={"Authorization": "Bearer nope"}
        )
        right = httpx.post(
            f"{url}/predict", json=APPLICATION, headers={"Authorization": "Bearer s3cret-token"}
        )
        explain = httpx.post(f"{url}/explain", json=APPLICATION)
        # The token is checked before the body is read: garbage gets 401 too.
        garbage = httpx.post(
            f"{url}/predict", content=b"{bad", headers={"content-type": "application/json"}
        )
        open_paths = [httpx.get(f"{url}{p}").status_code for p in ("/livez", "/readyz", "/metrics")]
        metrics = httpx.get(f"{url}/metrics").text

    assert (anonymous.status_code, wrong.status_code, right.status_code) == (401, 401, 200)
    assert explain.status_code == 401
    assert garbage.status_code == 401
    assert anonymous.headers["www-authenticate"] == "Bearer"
    assert open_paths == [200, 200, 200]
    assert "s3cret-token" not in metrics


def test_approval_rate_is_nan_until_the_first_decision(
    loanops_command: list[str], served_version: TrainingOutcome, tmp_path: Path
) -> None:
    with run_server(loanops_command, model_uri(served_version), tmp_path) as server:
        before = _gauge(httpx.get(f"{server.url}/metrics").text, "loan_approval_rate")
        httpx.post(f"{server.url}/predict", json=APPLICATION)
        after = _gauge(httpx.get(f"{server.url}/metrics").text, "loan_approval_rate")

    assert math.isnan(before)
    assert after in (0.0, 1.0)


def test_serve_refuses_to_start_without_its_model(
    loanops_command: list[str], mlflow_server: str, tmp_path: Path
) -> None:
    result = subprocess.run(
        [*loanops_command, "serve", "--model", "models:/no-such-model@champion"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )

    assert result.returncode == 2
    assert "alias 'champion' of model 'no-such-model' could not be resolved" in result.stderr
    assert "Traceback" not in result.stderr


def read_chunks(bucket_prefix: str) -> tuple[list[str], list[dict[str, Any]]]:
    filesystem = s3fs.S3FileSystem()
    paths = sorted(filesystem.find(bucket_prefix))
    records = []
    for path in paths:
        with filesystem.open(path, "rb") as handle:
            lines = gzip.decompress(handle.read()).decode().splitlines()
        records.extend(json.loads(line) for line in lines)
    return paths, records


def test_sigterm_under_load_ships_every_acknowledged_prediction(
    loanops_command: list[str], served_version: TrainingOutcome, tmp_path: Path, s3_bucket: str
) -> None:
    acknowledged: list[str] = []
    errors: list[str] = []
    stop = threading.Event()

    with run_server(
        loanops_command,
        model_uri(served_version),
        tmp_path,
        "--prediction-log", f"s3://{s3_bucket}/predictions",
        "--chunk-records", "40",
    ) as server:  # fmt: skip

        def drive(worker: int) -> None:
            with httpx.Client(timeout=10) as client:
                for sequence in range(2000):
                    if stop.is_set():
                        return
                    request_id = f"w{worker}-{sequence}"
                    try:
                        response = client.post(
                            f"{server.url}/predict",
                            json=APPLICATION,
                            headers={"x-request-id": request_id},
                        )
                    except httpx.HTTPError:
                        return  # the server went away: this one was never acknowledged
                    if response.status_code == 200:
                        acknowledged.append(request_id)
                    else:
                        errors.append(response.text)

        threads = [threading.Thread(target=drive, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        time.sleep(3)
        exit_code = server.terminate()
        stop.set()
        for thread in threads:
            thread.join()

    paths, records = read_chunks(f"{s3_bucket}/predictions")
    logged = [record["request_id"] for record in records]

    # uvicorn shuts down gracefully, then re-raises SIGTERM to its default.
    assert exit_code in (0, -signal.SIGTERM)
    assert "Prediction log closed" in server.log.read_text()
    assert len(acknowledged) > 100
    assert not set(acknowledged) - set(logged), "acknowledged predictions missing from the log"
    assert len(logged) == len(set(logged)), "a prediction was logged twice"
    assert all("/date=" in path and path.endswith(".jsonl.gz") for path in paths)
    assert {r["model_version"] for r in records} == {served_version.version}


def test_restart_ships_what_the_spool_still_holds(
    loanops_command: list[str], served_version: TrainingOutcome, tmp_path: Path, s3_bucket: str
) -> None:
    options = ("--prediction-log", f"s3://{s3_bucket}/log", "--chunk-records", "100000")
    options += ("--chunk-seconds", "3600")
    with run_server(loanops_command, model_uri(served_version), tmp_path, *options) as first:
        for n in range(5):
            httpx.post(f"{first.url}/predict", json=APPLICATION, headers={"x-request-id": f"a{n}"})
        first.process.send_signal(signal.SIGKILL)  # no flush: the records stay spooled
        first.process.wait()
    assert read_chunks(f"{s3_bucket}/log")[1] == []

    with run_server(loanops_command, model_uri(served_version), tmp_path, *options) as second:
        _, recovered = read_chunks(f"{s3_bucket}/log")
        second.terminate()

    assert sorted(r["request_id"] for r in recovered) == [f"a{n}" for n in range(5)]


def _gauge(metrics: str, name: str) -> float:
    for line in metrics.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split(" ", 1)[1])
    raise AssertionError(f"{name} not in metrics")
