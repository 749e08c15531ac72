"""SHAP explanations of a model version's decisions, per input field.

Contributions are computed with SHAP's TreeExplainer on the version's own
fitted estimator (XGBoost, CatBoost or RandomForest), on the encoded row, and
the one-hot columns of a categorical field are summed back onto that field.
They explain the estimator's raw output for P(default): log-odds for the
boosted families, probability for RandomForest. For every row, the base value
plus the contributions equals that raw output (SHAP's additivity), which
:meth:`Explainer.raw_output` lets callers check. The calibrator is monotone,
so the sign of a contribution also holds for the calibrated probability.
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
    base_value: float
    unit: Unit


class Explainer:
    """Explain a :class:`LoanRiskModel`'s estimator with SHAP's TreeExplainer."""

    def __init__(self, model: LoanRiskModel) -> None:
        import shap  # deferred: importing shap takes about a second.

        self.model = model
        self.unit: Unit = "probability" if model.family == "random_forest" else "log-odds"
        self._explainer = shap.TreeExplainer(model.estimator)
        expected = np.atleast_1d(np.asarray(self._explainer.expected_value, dtype=np.float64))
        # RandomForest explains both classes; column 1 is P(default).
        self.base_value = float(expected[-1])

    def explain_encoded(self, encoded: npt.NDArray[np.float64]) -> Explanation:
        """Return per-field contributions for encoded rows."""
        values = np.asarray(self._explainer.shap_values(encoded), dtype=np.float64)
        if values.ndim == 3:
            values = values[:, :, -1]
        return Explanation(
            contributions=self.model.encoder.fold(values),
            base_value=self.base_value,
            unit=self.unit,
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
