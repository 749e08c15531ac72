"""Glue between the command line and a training run.

Parses the textual options of ``loanops train`` into a
:class:`~loanops.trainer.training.TrainingConfig` and runs it.
"""

from __future__ import annotations

import io
from collections import Counter

from rich.console import Console

from loanops import storage
from loanops.artifacts import load_model
from loanops.errors import ConfigurationError, DataError
from loanops.profile import ReferenceProfile
from loanops.trainer.drift import (
    DriftReport,
    DriftThresholds,
    check_drift,
    parse_window,
    read_window,
)
from loanops.trainer.estimators import parse_families
from loanops.trainer.search import OBJECTIVES
from loanops.trainer.synthetic import Shift, generate
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
    skip_if_data_hash: str | None = None,
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
        skip_if_data_hash=skip_if_data_hash,
        **({"threads": threads} if threads else {}),
    )
    return train(config, console=console)


def parse_shift(scale: list[str] | None, mix: list[str] | None) -> Shift:
    """Parse ``FIELD=FACTOR`` and ``FIELD=CAT:SHARE,...`` options into a shift."""
    factors: dict[str, float] = {}
    for item in scale or []:
        name, _, factor = item.partition("=")
        try:
            factors[name.strip()] = float(factor)
        except ValueError:
            raise ConfigurationError(
                f"--scale {item!r} is not FIELD=FACTOR (for example person_income=0.7)."
            ) from None
    shares: dict[str, dict[str, float]] = {}
    for item in mix or []:
        name, _, parts = item.partition("=")
        try:
            shares[name.strip()] = {
                category.strip().upper(): float(share or 1)
                for category, _, share in (part.partition(":") for part in parts.split(","))
            }
        except ValueError:
            raise ConfigurationError(
                f"--mix {item!r} is not FIELD=CAT:SHARE[,CAT:SHARE] "
                "(for example loan_intent=VENTURE:1)."
            ) from None
    return Shift(scale=factors, shares=shares)


def write_generated(
    *, rows: int, seed: int, output: str, scale: list[str] | None, mix: list[str] | None
) -> str:
    """Generate applications and write them as CSV or Parquet to ``output``."""
    frame = generate(rows, seed=seed, shift=parse_shift(scale, mix))
    buffer = io.BytesIO()
    if output.endswith((".parquet", ".pq")):
        frame.to_parquet(buffer, index=False)
    else:
        frame.to_csv(buffer, index=False)
    location = storage.resolve(output)
    parent = location.path.rsplit("/", 1)[0]
    if not location.is_remote and parent:
        location.filesystem.makedirs(parent, exist_ok=True)
    with storage.open_binary(location, location.path, "wb") as handle:
        handle.write(buffer.getvalue())
    return output


def run_drift(
    *,
    predictions: str,
    model_name: str,
    version: str | None,
    since: str | None,
    until: str | None,
    hours: float,
    thresholds: DriftThresholds,
    s3_endpoint: str | None,
) -> DriftReport:
    """Read a window of the prediction log and check it against the reference."""
    begin, end = parse_window(since, until, hours)
    records = read_window(predictions, since=begin, until=end, s3_endpoint=s3_endpoint)
    if version is None:
        served = Counter(str(r.get("model_version")) for r in records if r.get("model_name"))
        if not served:
            # Nothing logged: no version to compare with, and nothing to compare.
            return check_drift([], ReferenceProfile(0, {}, {}), thresholds, window=(begin, end))
        version = served.most_common(1)[0][0]
    loaded = load_model(f"models:/{model_name}/{version}")
    if loaded.profile is None:
        raise DataError(f"version {version} of {model_name!r} has no reference profile.")
    chosen = [r for r in records if str(r.get("model_version")) == version]
    return check_drift(
        chosen, loaded.profile, thresholds, model_name=model_name, window=(begin, end)
    )
