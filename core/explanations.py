"""SHAP explanations of a model version's decisions, per input field.

Contributions are exact TreeSHAP values computed on the version's own fitted
estimator, on the encoded row; the one-hot columns of a categorical field are
then summed back onto that field. XGBoost and CatBoost compute TreeSHAP
natively (``pred_contribs`` and ``ShapValues``), which is fast enough for the
request path; RandomForest goes through SHAP's TreeExplainer.

They explain the estimator's raw output for P(default): log-odds for the
boosted families, probability for RandomForest. For every row the base value
plus the contributions equals that raw output (SHAP's additivity), which
:meth:`Explainer.raw_output` exposes so callers can check it. The calibrator
is monotone, so a contribution that raises the raw output also raises the
calibrated P(default).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from loanops.model import LoanRiskModel

Unit = Literal["log-odds", "probability"]


@dataclass(frozen=True, slots=True)
class Explanation:
    """SHAP contributions to P(default) of one or more rows, per input field."""

    contributions: dict[str, npt.NDArray[np.float64]]
    base_value: npt.NDArray[np.float64]
    unit: Unit


class Explainer:
    """Compute TreeSHAP contributions of a :class:`LoanRiskModel`'s estimator."""

    def __init__(self, model: LoanRiskModel) -> None:
        self.model = model
        self.unit: Unit = "probability" if model.family == "random_forest" else "log-odds"
        self._tree_explainer: Any = None
        if model.family == "random_forest":
            import shap  # deferred: importing shap takes about a second.

            self._tree_explainer = shap.TreeExplainer(model.estimator)

    def contributions(
        self, encoded: npt.NDArray[np.float64]
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Return per-encoded-column contributions and the base value per row."""
        estimator: Any = self.model.estimator
        if self.model.family == "xgboost":
            from xgboost import DMatrix

            matrix = DMatrix(encoded, nthread=self.model.threads)
            values = estimator.get_booster().predict(matrix, pred_contribs=True)
            return np.asarray(values[:, :-1], np.float64), np.asarray(values[:, -1], np.float64)
        if self.model.family == "catboost":
            from catboost import Pool

            values = estimator.get_feature_importance(
                data=Pool(encoded), type="ShapValues", thread_count=self.model.threads
            )
            return np.asarray(values[:, :-1], np.float64), np.asarray(values[:, -1], np.float64)
        explained = self._tree_explainer(encoded, check_additivity=False)
        values = np.asarray(explained.values, dtype=np.float64)
        base = np.asarray(explained.base_values, dtype=np.float64)
        if values.ndim == 3:  # one slice per class; class 1 is default.
            values, base = values[:, :, 1], base[:, 1]
        return values, base

    def explain_encoded(self, encoded: npt.NDArray[np.float64]) -> Explanation:
        """Return per-field contributions for encoded rows."""
        values, base = self.contributions(encoded)
        return Explanation(
            contributions=self.model.encoder.fold(values), base_value=base, unit=self.unit
        )

    def raw_output(self, encoded: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Return the estimator output the contributions add up to."""
        estimator: Any = self.model.estimator
        if self.model.family == "xgboost":
            return np.asarray(estimator.predict(encoded, output_margin=True), dtype=np.float64)
        if self.model.family == "catboost":
            raw = estimator.predict(encoded, prediction_type="RawFormulaVal")
            return np.asarray(raw, dtype=np.float64)
        return np.asarray(estimator.predict_proba(encoded)[:, 1], dtype=np.float64)


def global_importance(explainer: Explainer, encoded: npt.NDArray[np.float64]) -> dict[str, float]:
    """Return the mean absolute contribution of each input field over rows."""
    explanation = explainer.explain_encoded(encoded)
    return {
        name: float(np.mean(np.abs(values))) for name, values in explanation.contributions.items()
    }
