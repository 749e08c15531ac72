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

Usage::

    uv run python bench/drift.py [--windows 200]
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
from loanops.trainer.drift import check_drift
from loanops.trainer.training import TrainingConfig, train

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    arguments = parser.parse_args()

    with tempfile.TemporaryDirectory() as store:
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


if __name__ == "__main__":
    main()
