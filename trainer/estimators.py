"""The three estimator families, their search spaces and how to build them.

Each family is described once: its hyperopt search space and a function that
builds an unfitted estimator from a point of that space. The seed and thread
count are passed in, never searched: a seed is not a hyperparameter.
Boosted families (XGBoost, CatBoost) are built with early stopping for tuning
and with a fixed number of trees for the final refit.
"""

from __future__ import annotations

from typing import Any

from hyperopt import hp
from hyperopt.pyll import scope

from loanops.errors import ConfigurationError
from loanops.model import FAMILIES, Family

# Upper bound on boosting rounds while tuning; early stopping ends most fits
# far sooner. 50 rounds without improvement is the patience.
MAX_BOOSTING_ROUNDS = 2000
EARLY_STOPPING_ROUNDS = 50


def search_space(families: tuple[Family, ...]) -> Any:
    """Return the hyperopt space over the given families."""
    spaces: dict[Family, dict[str, Any]] = {
        "xgboost": {
            "family": "xgboost",
            "learning_rate": hp.loguniform("xgb_learning_rate", -4.0, -1.6),
            "max_depth": scope.int(hp.quniform("xgb_max_depth", 3, 9, 1)),
            "min_child_weight": hp.loguniform("xgb_min_child_weight", 0.0, 3.0),
            "subsample": hp.uniform("xgb_subsample", 0.6, 1.0),
            "colsample_bytree": hp.uniform("xgb_colsample_bytree", 0.5, 1.0),
            "reg_lambda": hp.loguniform("xgb_reg_lambda", -3.0, 3.0),
        },
        "catboost": {
            "family": "catboost",
            "learning_rate": hp.loguniform("cat_learning_rate", -3.5, -1.4),
            "depth": scope.int(hp.quniform("cat_depth", 4, 8, 1)),
            "l2_leaf_reg": hp.loguniform("cat_l2_leaf_reg", 0.0, 3.0),
            "random_strength": hp.uniform("cat_random_strength", 0.0, 2.0),
        },
        "random_forest": {
            "family": "random_forest",
            "n_estimators": scope.int(hp.quniform("rf_n_estimators", 100, 300, 50)),
            "max_depth": scope.int(hp.quniform("rf_max_depth", 6, 20, 1)),
            "min_samples_leaf": scope.int(hp.quniform("rf_min_samples_leaf", 1, 20, 1)),
            "max_features": hp.uniform("rf_max_features", 0.3, 0.9),
        },
    }
    return hp.choice("family", [spaces[family] for family in families])


def parse_families(text: str) -> tuple[Family, ...]:
    """Parse a comma-separated list of family names, keeping the given order."""
    names = tuple(
        part.strip().lower().replace("-", "_") for part in text.split(",") if part.strip()
    )
    unknown = [name for name in names if name not in FAMILIES]
    if unknown or not names:
        raise ConfigurationError(
            f"--families {text!r} names unknown families {unknown or '(none)'}; "
            f"accepted: {', '.join(FAMILIES)} (comma-separated)."
        )
    return tuple(dict.fromkeys(names))  # type: ignore[arg-type]


def is_boosted(family: Family) -> bool:
    """Whether the family grows trees in rounds, and so can stop early."""
    return family in ("xgboost", "catboost")


def build_estimator(
    params: dict[str, Any],
    *,
    seed: int,
    threads: int,
    rounds: int | None = None,
) -> Any:
    """Build an unfitted estimator for a point of the search space.

    ``rounds`` fixes the number of boosting rounds (the refit); without it a
    boosted estimator stops early on the evaluation set it is given.
    """
    settings = {key: value for key, value in params.items() if key != "family"}
    family: Family = params["family"]
    if family == "xgboost":
        from xgboost import XGBClassifier

        return XGBClassifier(
            n_estimators=rounds or MAX_BOOSTING_ROUNDS,
            early_stopping_rounds=None if rounds else EARLY_STOPPING_ROUNDS,
            tree_method="hist",
            eval_metric="logloss",
            n_jobs=threads,
            random_state=seed,
            **settings,
        )
    if family == "catboost":
        from catboost import CatBoostClassifier

        return CatBoostClassifier(
            iterations=rounds or MAX_BOOSTING_ROUNDS,
            early_stopping_rounds=None if rounds else EARLY_STOPPING_ROUNDS,
            thread_count=threads,
            random_seed=seed,
            verbose=0,
            allow_writing_files=False,
            **settings,
        )
    if family == "random_forest":
        from sklearn.ensemble import RandomForestClassifier

        return RandomForestClassifier(n_jobs=threads, random_state=seed, **settings)
    raise ConfigurationError(f"estimator family {family!r} is unknown; accepted: {FAMILIES}.")


def best_rounds(estimator: Any, family: Family) -> int:
    """Return the round at which an early-stopped boosted estimator was best."""
    if family == "xgboost":
        return int(estimator.best_iteration) + 1
    return int(estimator.get_best_iteration()) + 1
