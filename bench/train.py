"""Benchmark of ``loanops train`` with the default budget on the real S4E10 data.

Prints wall time, peak memory, trials per minute and the evaluation metrics.
The tracking store is a SQLite file in a temporary folder, so the figures
include MLflow logging but no network. Usage::

    uv run python bench/train.py [--data PATH] [--max-evals N] [--families ...]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

from loanops.trainer.estimators import parse_families
from loanops.trainer.training import TrainingConfig, train

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "s4e10_train.csv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    defaults = TrainingConfig(data_uri="")
    parser.add_argument("--max-evals", type=int, default=defaults.max_evals)
    parser.add_argument("--cv-folds", type=int, default=defaults.cv_folds)
    parser.add_argument("--families", default=",".join(defaults.families))
    parser.add_argument("--seed", type=int, default=defaults.seed)
    arguments = parser.parse_args()

    with tempfile.TemporaryDirectory() as store:
        config = TrainingConfig(
            data_uri=arguments.data,
            tracking_uri=f"sqlite:///{store}/mlflow.db",
            model_name="bench-train",
            families=parse_families(arguments.families),
            max_evals=arguments.max_evals,
            cv_folds=arguments.cv_folds,
            seed=arguments.seed,
        )
        started = time.perf_counter()
        outcome = train(config)
        seconds = time.perf_counter() - started

    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"data                 {arguments.data} ({outcome.rows} usable rows)")
    print(
        f"budget               {config.max_evals} trials x {config.cv_folds} folds over "
        f"{','.join(config.families)}, {config.threads} threads, seed {config.seed}"
    )
    print(f"wall time            {seconds:.1f} s")
    print(f"peak memory (RSS)    {peak_mib:.0f} MiB")
    print(f"trials per minute    {config.max_evals / seconds * 60:.2f}")
    print(f"chosen               {outcome.family} {outcome.params}")
    print(f"cv_best_score        {outcome.cv_best_score:.4f} ({'roc_auc'})")
    for name, value in outcome.metrics.items():
        print(f"{name:<24} {value:.6f}")


if __name__ == "__main__":
    main()
