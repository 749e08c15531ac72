"""The fitted loan-risk model: encoding, tuned estimator, calibrator, threshold.

One :class:`LoanRiskModel` is what the trainer logs to MLflow as a model
version and what the server loads. It holds every step between an application
and a decision, so serving can never drift from training:

1. :class:`~loanops.features.ApplicationEncoder` turns applications into a
   float matrix;
2. the tuned estimator (XGBoost, CatBoost or RandomForest) gives a raw
   probability of default;
3. a beta calibrator (a logistic regression on ``ln p`` and ``-ln(1 - p)`` of
   the raw probability, fitted on the calibration split; Kull, Silva Filho and
   Flach, 2017) corrects that probability. Unlike Platt scaling it can bend the
   curve differently near 0 and near 1, which tree ensembles need;
4. the decision threshold, chosen on the calibration split, turns the
   calibrated P(default) into a decision: approved when P(default) < threshold.

Column 1 of :meth:`LoanRiskModel.predict_proba` is always P(default), class 1
of the label ``loan_status``.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.special import expit

from loanops.boosters import DenseBoosterPredictor, dense_predictor
from loanops.features import ApplicationEncoder
from loanops.schema import FEATURE_NAMES

Family = Literal["xgboost", "catboost", "random_forest"]
FAMILIES: tuple[Family, ...] = ("xgboost", "catboost", "random_forest")

# Raw probabilities are clipped before the logarithms so a tree that outputs exactly
# 0 or 1 (RandomForest leaves do) still yields a finite calibrator input.
_PROBABILITY_EPSILON = 1e-6


def calibration_features(probability: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Return the beta-calibration inputs ``[ln p, -ln(1 - p)]``, p clipped from 0 and 1."""
    clipped = np.clip(probability, _PROBABILITY_EPSILON, 1 - _PROBABILITY_EPSILON)
    return np.column_stack([np.log(clipped), -np.log1p(-clipped)])


class LoanRiskModel:
    """A calibrated estimate of P(default) with its decision threshold.

    Parameters
    ----------
    family:
        Which estimator family ``estimator`` belongs to.
    estimator:
        A fitted binary classifier with ``predict_proba``, trained on the
        encoder's output with class 1 meaning default.
    calibrator:
        A fitted scikit-learn ``LogisticRegression`` mapping
        :func:`calibration_features` of the raw P(default) to a calibrated one.
    threshold:
        P(default) at or above which an application is declined.
    """

    def __init__(
        self,
        *,
        family: Family,
        estimator: Any,
        calibrator: Any,
        threshold: float,
        params: dict[str, Any] | None = None,
    ) -> None:
        self.family = family
        self.estimator = estimator
        self.calibrator = calibrator
        self.threshold = float(threshold)
        self.params = dict(params or {})
        self.encoder = ApplicationEncoder()
        self.feature_names = FEATURE_NAMES

    def encode(self, frame: pd.DataFrame) -> npt.NDArray[np.float64]:
        """Encode a DataFrame of applications for the estimator."""
        return self.encoder.transform(frame)

    def raw_default_probability(self, encoded: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Return the uncalibrated estimator's P(default) for encoded rows."""
        if self.family == "xgboost":
            # The booster directly: the scikit-learn wrapper's checks cost more
            # than the prediction itself on a few rows.
            predictor = self._xgboost_predictor()
            if predictor is not None:
                return predictor.predict(encoded)
            booster = self.estimator.get_booster()
            default = booster.inplace_predict(encoded, validate_features=False)
            return np.asarray(default, dtype=np.float64)
        if self.family == "catboost":
            # A fitted CatBoost model refuses set_params; threads go per call.
            raw = self.estimator.predict_proba(encoded, thread_count=self.threads)
        else:
            raw = self.estimator.predict_proba(encoded)
        return np.asarray(raw[:, 1], dtype=np.float64)

    def _xgboost_predictor(self) -> DenseBoosterPredictor | None:
        # Set up on first use rather than in __init__, and never pickled: it
        # holds a pointer into this process's XGBoost library, and versions
        # pickled before it existed are loaded without it. Set up again when
        # the estimator's booster is no longer the one it was set up for (a
        # refit, a replaced estimator).
        booster = self.estimator.get_booster()
        cached: tuple[Any, DenseBoosterPredictor | None] | None = self.__dict__.get(
            "_dense_predictor"
        )
        if cached is None or cached[0] is not booster:
            cached = self.__dict__["_dense_predictor"] = (booster, dense_predictor(booster))
        return cached[1]

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_dense_predictor", None)
        return state

    def calibrate(self, raw_probability: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Map raw P(default) through the calibrator."""
        # The fitted logistic regression applied directly: scikit-learn's
        # predict_proba validates its input at a cost of about 1 ms per call.
        # Written out rather than as a matrix product: BLAS may sum the two
        # terms in another order for one row than for many, and an
        # application must get the same P(default), to the last bit, alone
        # or in a batch.
        features = calibration_features(raw_probability)
        (log_weight, complement_weight), intercept = (
            self.calibrator.coef_[0],
            self.calibrator.intercept_[0],
        )
        score = features[:, 0] * log_weight + features[:, 1] * complement_weight + intercept
        return np.asarray(expit(score), dtype=np.float64)

    def default_probability_encoded(
        self, encoded: npt.NDArray[np.float64]
    ) -> npt.NDArray[np.float64]:
        """Return the calibrated P(default) for encoded rows."""
        return self.calibrate(self.raw_default_probability(encoded))

    def default_probability(self, frame: pd.DataFrame) -> npt.NDArray[np.float64]:
        """Return the calibrated P(default) for a DataFrame of applications."""
        return self.default_probability_encoded(self.encode(frame))

    def predict_proba(self, frame: pd.DataFrame) -> npt.NDArray[np.float64]:
        """Return [P(no default), P(default)] per row, scikit-learn style."""
        default = self.default_probability(frame)
        return np.column_stack([1 - default, default])

    def predict(self, frame: pd.DataFrame) -> npt.NDArray[np.int64]:
        """Return 1 (declined: default expected) or 0 (approved) per row."""
        return (self.default_probability(frame) >= self.threshold).astype(np.int64)

    @property
    def threads(self) -> int:
        """Threads the estimator may use per prediction (default: all cores)."""
        return int(getattr(self, "_threads", 0)) or -1

    def set_thread_count(self, threads: int) -> None:
        """Limit the estimator's prediction threads.

        On a small machine, several threads per single-row prediction cost more
        in synchronisation than they gain; servers use one.
        """
        self._threads = threads
        if self.family != "catboost":
            self.estimator.set_params(n_jobs=threads)
