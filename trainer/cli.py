"""Glue between the command line and a training run.

Parses the textual options of ``loanops train`` into a
:class:`~loanops.trainer.training.TrainingConfig` and runs it.
"""

from __future__ import annotations

from rich.console import Console

from loanops.errors import ConfigurationError
from loanops.trainer.estimators import parse_families
from loanops.trainer.search import OBJECTIVES
from loanops.trainer.training import TrainingConfig, TrainingOutcome, train


def run_training(
    *,
    data_uri: str,
    tracking_uri: str | None,
    model_name: str,
    experiment: str | None,
    families: str,
    max_evals: int,
    cv_folds: int,
    objective: str,
    seed: int,
    threads: int | None,
    s3_endpoint: str | None,
    console: Console | None = None,
) -> TrainingOutcome:
    """Validate the options of ``loanops train`` and run the training."""
    if objective not in OBJECTIVES:
        raise ConfigurationError(
            f"--objective {objective!r} is unknown; accepted: {', '.join(OBJECTIVES)}."
        )
    config = TrainingConfig(
        data_uri=data_uri,
        tracking_uri=tracking_uri,
        model_name=model_name,
        experiment=experiment,
        families=parse_families(families),
        max_evals=max_evals,
        cv_folds=cv_folds,
        objective=objective,
        seed=seed,
        s3_endpoint=s3_endpoint,
        **({"threads": threads} if threads else {}),
    )
    return train(config, console=console)
