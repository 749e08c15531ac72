"""Benchmark of the prediction server against ``mlflow models serve``.

Trains one small XGBoost version on the real S4E10 data into a temporary
MLflow store, then starts three servers on loopback, one after another:

- ``loanops serve`` on that version,
- ``mlflow models serve`` on the same version (``--env-manager local``),
- a bare FastAPI endpoint answering a constant (the floor of the stack),

and drives each with the same load from ``wrk`` (Debian's package): single
applications, then 100-application batches. Prints requests per second,
rows per second, p50 and p99 latency, the ratios between the servers, and the
in-process single-row scoring time. The servers and the load generator share
this machine's cores, so compare figures of one run, not across runs.

The comparison is kept fair: each server is one process with one worker, its
estimator predicts on one thread (``OMP_THREAD_LIMIT=1``: the version's
XGBoost model was fitted with ``n_jobs`` set to every core, which
``loanops serve`` overrides and ``mlflow models serve`` would keep; two
threads per prediction on two cores shared with the load generator made
MLflow several times slower), none writes an access log, each is warmed up
on the load it is then measured on, and both get the same applications.
Both run on uvicorn from this environment, so with the same HTTP parser
(httptools) and event loop (uvloop), and MLflow's pyfunc predicts through
the same ``LoanRiskModel`` code: what differs is the serving path.

Usage::

    uv run python bench/serve.py [--seconds 15] [--connections 8]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
BIN = Path(sys.executable).parent


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server for {url} exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} not ready after {timeout} s")


def run_wrk(url: str, bodies: list[str], *, seconds: int, connections: int) -> dict[str, float]:
    """Drive ``url`` with POSTs cycling through ``bodies``; return rps, p50, p99 (ms)."""
    lua_bodies = ", ".join(json.dumps(body) for body in bodies)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(
            textwrap.dedent(
                f"""
                bodies = {{{lua_bodies}}}
                counter = 0
                request = function()
                  counter = counter % #bodies + 1
                  return wrk.format("POST", nil, {{["Content-Type"] = "application/json"}},
                                    bodies[counter])
                end
                done = function(summary, latency, requests)
                  io.write(string.format("P50 %f\\nP99 %f\\nERRORS %d\\n",
                    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
                    summary.errors.status + summary.errors.connect + summary.errors.timeout))
                end
                """
            )
        )
    output = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", script.name, "--latency", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    os.unlink(script.name)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    p50 = float(re.search(r"P50 ([\d.]+)", output).group(1))  # type: ignore[union-attr]
    p99 = float(re.search(r"P99 ([\d.]+)", output).group(1))  # type: ignore[union-attr]
    errors = int(re.search(r"ERRORS (\d+)", output).group(1))  # type: ignore[union-attr]
    return {"rps": rps, "p50_ms": p50, "p99_ms": p99, "errors": errors}


BARE_APP = """
from fastapi import FastAPI
app = FastAPI()
@app.post("/predict")
async def predict(body: dict) -> dict:
    return {"approved": True, "default_probability": 0.1}
@app.get("/ready")
async def ready() -> dict:
    return {}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=8)
    arguments = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("bench/serve.py needs wrk: apt-get install wrk")

    workdir = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    tracking = f"sqlite:///{workdir}/mlflow.db"
    # mlflow models serve starts uvicorn by name: the venv must be on PATH.
    path = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, "PATH": path, "MLFLOW_TRACKING_URI": tracking}
    # Run in workdir: MLflow puts a SQLite store's artifacts under ./mlruns,
    # which is then removed with the rest of the run.
    subprocess.run(
        [BIN / "loanops", "train", "--data", str(DATA / "s4e10_train.csv"),
         "--families", "xgboost", "--max-evals", "4", "--model-name", "bench-serve"],
        env=env, check=True, capture_output=True, cwd=workdir,
    )  # fmt: skip
    # Servers only: training above used every core, as it does in production.
    # uvicorn reads UVICORN_* variables; loanops serve already logs no access.
    server_env = {**env, "OMP_THREAD_LIMIT": "1", "UVICORN_ACCESS_LOG": "false"}
    model = "models:/bench-serve/1"

    requests = pd.read_csv(DATA / "s4e10_test.csv")
    fields = [
        "person_age", "person_income", "person_home_ownership", "person_emp_length",
        "loan_intent", "loan_amnt", "loan_percent_income", "cb_person_default_on_file",
        "cb_person_cred_hist_length",
    ]  # fmt: skip
    rows = requests[fields].head(100).to_dict("records")
    # Single requests cycle through 100 real applications, so the share of
    # declined ones (which carry SHAP reasons on /predict) is realistic.
    single, batch = rows[0], rows
    singles = [json.dumps(row) for row in rows]

    port = free_port()
    servers = {
        "loanops": (
            [BIN / "loanops", "serve", "--model", model, "--port", str(port),
             "--prediction-log", str(workdir / "log"), "--spool-dir", str(workdir / "spool")],
            f"http://127.0.0.1:{port}/readyz",
            (f"http://127.0.0.1:{port}/predict", singles),
            (f"http://127.0.0.1:{port}/predict/batch", [json.dumps({"applications": batch})]),
        ),
        "mlflow": (
            [BIN / "mlflow", "models", "serve", "-m", model, "--env-manager", "local",
             "-p", str(port + 1), "-h", "127.0.0.1"],
            f"http://127.0.0.1:{port + 1}/ping",
            (f"http://127.0.0.1:{port + 1}/invocations",
             [json.dumps({"dataframe_records": [row]}) for row in rows]),
            (f"http://127.0.0.1:{port + 1}/invocations",
             [json.dumps({"dataframe_records": batch})]),
        ),
        "bare": (
            [BIN / "uvicorn", "--app-dir", str(workdir), "bare:app", "--port", str(port + 2),
             "--no-access-log", "--log-level", "warning"],
            f"http://127.0.0.1:{port + 2}/ready",
            (f"http://127.0.0.1:{port + 2}/predict", singles),
            None,
        ),
    }  # fmt: skip
    (workdir / "bare.py").write_text(BARE_APP)

    results: dict[str, dict[str, dict[str, float]]] = {}
    for name, (command, ready, single_load, batch_load) in servers.items():
        process = subprocess.Popen(
            [str(c) for c in command],
            env=server_env,
            cwd=workdir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_ready(ready, process)
            options = {"seconds": arguments.seconds, "connections": arguments.connections}
            warm_up = {"seconds": 2, "connections": arguments.connections}
            run_wrk(*single_load, **warm_up)
            results[name] = {"single": run_wrk(*single_load, **options)}
            if batch_load is not None:
                run_wrk(*batch_load, **warm_up)
                results[name]["batch100"] = run_wrk(*batch_load, **options)
        finally:
            process.terminate()
            process.wait(timeout=60)

    print(
        f"load: wrk, 1 thread, {arguments.connections} connections, {arguments.seconds} s each "
        "after a 2 s warm-up; single rows cycle through 100 applications of s4e10_test.csv; "
        "/predict gives reasons for declined ones, /predict/batch none (its default); "
        "every server: 1 process, 1 worker, 1 estimator thread, no access log"
    )
    print(f"{'server':<10}{'load':<10}{'req/s':>10}{'rows/s':>10}{'p50 ms':>9}{'p99 ms':>9}"
          f"{'p99/p50':>9}{'errors':>8}")  # fmt: skip
    for name, loads in results.items():
        for load, figures in loads.items():
            per_request = 100 if load == "batch100" else 1
            print(
                f"{name:<10}{load:<10}{figures['rps']:>10.0f}{figures['rps'] * per_request:>10.0f}"
                f"{figures['p50_ms']:>9.2f}{figures['p99_ms']:>9.2f}"
                f"{figures['p99_ms'] / figures['p50_ms']:>9.1f}{figures['errors']:>8.0f}"
            )
    for load in ("single", "batch100"):
        ours, theirs = results["loanops"][load], results["mlflow"][load]
        print(
            f"loanops / mlflow, {load}: throughput x{ours['rps'] / theirs['rps']:.2f}, "
            f"p99 {ours['p99_ms']:.2f} ms vs {theirs['p99_ms']:.2f} ms"
        )
    bare = results["bare"]["single"]["rps"]
    print(f"loanops single-row throughput is {results['loanops']['single']['rps'] / bare:.0%} "
          "of the bare FastAPI floor")  # fmt: skip

    # In-process scoring time of one row, without HTTP.
    os.environ["MLFLOW_TRACKING_URI"] = tracking
    from loanops.artifacts import load_model
    from loanops.server.scoring import Scorer

    scorer = Scorer(load_model(model), threads=1)
    encoded = scorer.model.encoder.transform_records([single])
    for _ in range(100):
        scorer.score([single])
    decision_times, full_times = [], []
    for _ in range(2000):
        started = time.perf_counter()
        scorer.model.default_probability_encoded(scorer.model.encoder.transform_records([single]))
        decision_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        scorer.score([single])
        full_times.append(time.perf_counter() - started)
    del encoded
    print(
        f"in-process single row, 2000 repetitions: decision (encode, estimator, calibrator) "
        f"median {np.median(decision_times) * 1e3:.3f} ms; with SHAP reasons "
        f"median {np.median(full_times) * 1e3:.3f} ms"
    )
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
