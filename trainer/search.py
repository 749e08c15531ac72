"""Hyperparameter search: hyperopt TPE over the families, scored by stratified CV.

Each trial is scored by stratified K-fold cross-validation on the training
split. A boosted family stops early on an inner validation part carved out of
each training fold, never on the fold being scored, and the number of rounds
it reached is kept so the refit on the whole training split can use it. The
search is seeded end to end (folds, inner splits, TPE, estimators), so the
same data and seed choose the same configuration.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from hyperopt import STATUS_OK, Trials, fmin, space_eval, tpe
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sklearn.metrics import average_precision_score, log_loss, precision_recall_curve, roc_auc_score
from sklearn.model_selection import StratifiedKFold, train_test_split

from loanops.model import Family
from loanops.trainer.estimators import best_rounds, build_estimator, is_boosted, search_space

logger = logging.getLogger(__name__)

Objective = Literal["roc_auc", "pr_auc", "f1", "log_loss"]
OBJECTIVES: tuple[Objective, ...] = ("roc_auc", "pr_auc", "f1", "log_loss")

# Share of each training fold held out for early stopping.
INNER_VALIDATION_SHARE = 0.1


def best_f1(labels: npt.NDArray[Any], scores: npt.NDArray[np.float64]) -> float:
    """Return the best F1 of the default class over all thresholds."""
    precision, recall, _ = precision_recall_curve(labels, scores)
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    return float(np.nanmax(f1))


def score(objective: Objective, labels: npt.NDArray[Any], scores: npt.NDArray[np.float64]) -> float:
    """Score P(default) predictions; higher is better except for log_loss."""
    if objective == "roc_auc":
        return float(roc_auc_score(labels, scores))
    if objective == "pr_auc":
        return float(average_precision_score(labels, scores))
    if objective == "f1":
        return best_f1(labels, scores)
    return float(log_loss(labels, np.clip(scores, 1e-15, 1 - 1e-15)))


@dataclass(frozen=True, slots=True)
class SearchConfig:
    """How much to search, and how to score."""

    families: tuple[Family, ...]
    max_evals: int
    cv_folds: int
    objective: Objective
    seed: int
    threads: int


@dataclass(slots=True)
class SearchResult:
    """The best configuration found and what the search went through."""

    params: dict[str, Any]
    cv_score: float
    rounds: int | None
    trials: int
    history: list[dict[str, Any]] = field(default_factory=list)


def cross_validate(
    params: dict[str, Any],
    features: npt.NDArray[np.float64],
    labels: npt.NDArray[np.int64],
    config: SearchConfig,
) -> tuple[float, int | None]:
    """Return the mean CV score of ``params`` and, if boosted, the mean best round."""
    family: Family = params["family"]
    folds = StratifiedKFold(n_splits=config.cv_folds, shuffle=True, random_state=config.seed)
    scores: list[float] = []
    rounds: list[int] = []
    for fold, (fit_index, score_index) in enumerate(folds.split(features, labels)):
        estimator = build_estimator(params, seed=config.seed, threads=config.threads)
        fit_x, fit_y = features[fit_index], labels[fit_index]
        if is_boosted(family):
            # Early stopping watches a part of the training fold only.
            fit_x, stop_x, fit_y, stop_y = train_test_split(
                fit_x,
                fit_y,
                test_size=INNER_VALIDATION_SHARE,
                stratify=fit_y,
                random_state=config.seed + fold,
            )
            eval_set = [(stop_x, stop_y)]
            if family == "xgboost":
                estimator.fit(fit_x, fit_y, eval_set=eval_set, verbose=False)
            else:
                estimator.fit(fit_x, fit_y, eval_set=eval_set)
            rounds.append(best_rounds(estimator, family))
        else:
            estimator.fit(fit_x, fit_y)
        predicted = estimator.predict_proba(features[score_index])[:, 1]
        scores.append(score(config.objective, labels[score_index], predicted))
    mean_rounds = round(float(np.mean(rounds))) if rounds else None
    return float(np.mean(scores)), mean_rounds


def search(
    features: npt.NDArray[np.float64],
    labels: npt.NDArray[np.int64],
    config: SearchConfig,
    *,
    console: Console | None = None,
    on_trial: Callable[[int, dict[str, Any]], None] | None = None,
) -> SearchResult:
    """Run the TPE search and return the best configuration."""
    maximize = config.objective != "log_loss"
    history: list[dict[str, Any]] = []
    best = {"score": -math.inf if maximize else math.inf}

    progress = Progress(
        TextColumn("[bold]search[/bold] trial"),
        MofNCompleteColumn(),
        BarColumn(),
        TextColumn("best {task.fields[objective]} {task.fields[best]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
    task = progress.add_task("search", total=config.max_evals, objective=config.objective, best="-")

    def evaluate(params: dict[str, Any]) -> dict[str, Any]:
        cv_score, rounds = cross_validate(params, features, labels, config)
        record = {"params": params, "cv_score": cv_score, "rounds": rounds}
        history.append(record)
        improved = cv_score > best["score"] if maximize else cv_score < best["score"]
        if improved:
            best["score"] = cv_score
        progress.update(task, advance=1, best=f"{best['score']:.4f}")
        # A Job's log is no terminal: there the bar is silent, so log a line.
        log = logger.debug if progress.console.is_terminal else logger.info
        log(
            "Trial %d of %d (%s) scored %s %.4f; best so far %.4f.",
            len(history),
            config.max_evals,
            params["family"],
            config.objective,
            cv_score,
            best["score"],
        )
        if on_trial is not None:
            on_trial(len(history), record)
        return {"loss": -cv_score if maximize else cv_score, "status": STATUS_OK, "rounds": rounds}

    trials = Trials()
    space = search_space(config.families)
    # TPE needs some random trials to model; a third of the budget, at least 3.
    algorithm = partial(tpe.suggest, n_startup_jobs=max(3, config.max_evals // 3))
    with progress:
        chosen = fmin(
            fn=evaluate,
            space=space,
            algo=algorithm,
            max_evals=config.max_evals,
            trials=trials,
            rstate=np.random.default_rng(config.seed),
            show_progressbar=False,
        )
    params = space_eval(space, chosen)
    winner = min(range(len(history)), key=lambda i: trials.losses()[i])
    return SearchResult(
        params=dict(params),
        cv_score=history[winner]["cv_score"],
        rounds=history[winner]["rounds"],
        trials=len(history),
        history=history,
    )
