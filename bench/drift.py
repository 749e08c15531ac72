"""Statistical quality of ``loanops drift`` on the real S4E10 data.

Trains one XGBoost version on ``s4e10_train.csv`` (small budget, temporary
MLflow store), takes its reference profile, then checks windows of rows drawn
from ``s4e10_test.csv``:

- unchanged (no drift: the share flagged is the false-alarm rate),
- with ``person_income`` scaled by 0.7,
- with the loan-intent mix replaced by a single intent (VENTURE),

at 500 and 5,000 rows per window, 200 windows each, and prints the share of
windows flagged and the share where the moved field is named. Predicted
P(default) is recomputed by the model on the shifted rows, as a server would.

Last, it times one whole check as the CronJob runs it (``run_drift``: list and
read the gzip chunks, load the version's reference profile from MLflow, test)
over 100,000 predictions written by the server's own prediction logger.

Usage::

    uv run python bench/drift.py [--windows 200] [--logged 100000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from loanops.artifacts import load_model
from loanops.schema import FEATURE_NAMES, schema_dtypes
from loanops.server.predictions import PredictionLog
from loanops.server.settings import PredictionLogSettings
from loanops.trainer.cli import run_drift
from loanops.trainer.drift import DriftThresholds, check_drift
from loanops.trainer.training import TrainingConfig, train

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--logged", type=int, default=100_000)
    arguments = parser.parse_args()

    with tempfile.TemporaryDirectory() as store:
        run(arguments, Path(store))


def run(arguments: argparse.Namespace, store: Path) -> None:
    """Train on the real data in ``store``, then measure every figure."""
    outcome = train(
        TrainingConfig(
            data_uri=str(DATA / "s4e10_train.csv"),
            tracking_uri=f"sqlite:///{store}/mlflow.db",
            model_name="bench-drift",
            families=("xgboost",),
            max_evals=2,
        )
    )
    loaded = load_model(f"models:/bench-drift/{outcome.version}")
    assert loaded.profile is not None
    model, profile = loaded.model, loaded.profile

    traffic = pd.read_csv(DATA / "s4e10_test.csv").loc[:, list(FEATURE_NAMES)]
    traffic = traffic.astype(schema_dtypes())
    poorer = traffic.assign(person_income=traffic["person_income"] * 0.7)
    scenarios = {
        "none": (traffic, None),
        "income x0.7": (poorer, "person_income"),
        "one intent": (traffic.assign(loan_intent="VENTURE"), "loan_intent"),
    }
    prepared = {}
    for name, (frame, moved) in scenarios.items():
        probability = model.default_probability(frame)
        prepared[name] = (frame.to_dict("records"), probability, moved)

    rng = np.random.default_rng(arguments.seed)
    print(f"model version {outcome.version}, reference rows {profile.rows}, "
          f"{arguments.windows} windows per cell")  # fmt: skip
    print(f"{'window':>7} {'shift':<12} {'flagged':>8} {'field named':>12} {'ms/check':>9}")
    for size in (500, 5000):
        for name, (rows, probability, moved) in prepared.items():
            flagged = named = 0
            started = time.perf_counter()
            for _ in range(arguments.windows):
                picks = rng.choice(len(rows), size=size, replace=False)
                records = [
                    {"model_version": "1", "inputs": rows[i], "default_probability": probability[i]}
                    for i in picks
                ]
                report = check_drift(records, profile)
                flagged += report.verdict == "drift"
                named += moved is not None and moved in report.drifted_fields
            per_check = (time.perf_counter() - started) / arguments.windows * 1e3
            named_text = f"{named / arguments.windows:.1%}" if moved else "-"
            print(
                f"{size:>7} {name:<12} {flagged / arguments.windows:>8.1%} {named_text:>12} "
                f"{per_check:>9.1f}"
            )

    rows, probability, _ = prepared["none"]
    time_whole_check(store, outcome.version, rows, probability, arguments.logged, rng)


def time_whole_check(
    store: Path,
    version: str,
    rows: list[dict[str, object]],
    probability: np.ndarray,
    logged: int,
    rng: np.random.Generator,
) -> None:
    """Log ``logged`` predictions with the server's logger, then time one check."""
    settings = PredictionLogSettings(
        uri=str(store / "log"), spool_dir=store / "spool", max_records=5000
    )
    log = PredictionLog(settings)
    log.start()
    picks = rng.choice(len(rows), size=logged, replace=True)
    now = time.time()
    # As a server logs them: one append per 100-row batch request, so chunks
    # are cut at their size limit the way they are in production.
    for start in range(0, logged, 100):
        log.append(
            {
                "time": now,
                "model_name": "bench-drift",
                "model_version": version,
                "inputs": rows[i],
                "default_probability": float(probability[i]),
            }
            for i in picks[start : start + 100]
        )
    log.close()
    chunks = len(list((store / "log").rglob("*.jsonl.gz")))

    started = time.perf_counter()
    report = run_drift(
        predictions=str(store / "log"),
        model_name="bench-drift",
        version=None,
        since=None,
        until=None,
        hours=1.0,
        thresholds=DriftThresholds(),
        s3_endpoint=None,
    )
    seconds = time.perf_counter() - started
    print(
        f"whole check over {report.samples:,} logged predictions in {chunks} chunks: "
        f"{seconds:.2f} s (target < 10 s), verdict {report.verdict}"
    )


if __name__ == "__main__":
    main()
