"""Scoring applications with the served model version, with reasons.

The :class:`Scorer` works on validated applications as plain dictionaries and
never builds a DataFrame: the encoder writes them straight into a float
matrix. One TreeSHAP pass gives both the reasons and the raw estimator output
(by SHAP's additivity, base value plus contributions *is* the raw output), so
a decision with its reasons costs one pass over the trees, not two.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.special import expit

from loanops.artifacts import LoadedModel
from loanops.explanations import Explainer
from loanops.schema import FIELDS, FIELDS_BY_NAME, NumericField
from loanops.server.schemas import Contribution, Decision, ExplainResponse, Reason


def _describe(field_name: str, value: Any) -> str:
    schema_field = FIELDS_BY_NAME[field_name]
    if isinstance(schema_field, NumericField):
        unit = f" {schema_field.unit}" if schema_field.unit not in ("", "ratio") else ""
        shown = f"{value:g}" if isinstance(value, float) else str(value)
        return f"{schema_field.label} of {shown}{unit} raises the estimated risk of default"
    return f"{schema_field.label} '{value}' raises the estimated risk of default"


class Scorer:
    """Decide on applications with one loaded model version."""

    def __init__(self, loaded: LoadedModel, *, top_reasons: int = 3, threads: int = 1) -> None:
        self.loaded = loaded
        self.model = loaded.model
        self.model.set_thread_count(threads)
        self.explainer = Explainer(self.model)
        self.top_reasons = top_reasons
        self.threshold = float(self.model.threshold)
        self.version = loaded.version or loaded.uri
        self.name = loaded.name

    def _raw_and_contributions(
        self, encoded: npt.NDArray[np.float64]
    ) -> tuple[npt.NDArray[np.float64], dict[str, npt.NDArray[np.float64]]]:
        values, base = self.explainer.contributions(encoded)
        raw_output = base + values.sum(axis=1)
        if self.explainer.unit == "log-odds":
            raw_probability = np.asarray(expit(raw_output), dtype=np.float64)
        else:
            raw_probability = raw_output
        return raw_probability, self.model.encoder.fold(values)

    def score(self, applications: Sequence[Mapping[str, Any]]) -> list[Decision]:
        """Return one decision, with its reasons, per application."""
        encoded = self.model.encoder.transform_records(applications)
        raw_probability, contributions = self._raw_and_contributions(encoded)
        default = self.model.calibrate(np.clip(raw_probability, 0.0, 1.0))
        names = [f.name for f in FIELDS]
        matrix = np.column_stack([contributions[name] for name in names])

        decisions = []
        for row, application in enumerate(applications):
            probability = float(default[row])
            order = np.argsort(-matrix[row])[: self.top_reasons]
            reasons = [
                Reason(
                    field=names[i],
                    label=FIELDS_BY_NAME[names[i]].label,
                    value=application[names[i]],
                    contribution=float(matrix[row, i]),
                    text=_describe(names[i], application[names[i]]),
                )
                for i in order
                if matrix[row, i] > 0
            ]
            approved = probability < self.threshold
            decisions.append(
                Decision(
                    approved=approved,
                    decision="approved" if approved else "declined",
                    default_probability=probability,
                    approval_probability=1.0 - probability,
                    probability=1.0 - probability,
                    threshold=self.threshold,
                    model_name=self.name,
                    model_version=self.version,
                    reasons=reasons,
                )
            )
        return decisions

    def explain(self, application: Mapping[str, Any]) -> ExplainResponse:
        """Return the SHAP contributions of every input field to one decision."""
        encoded = self.model.encoder.transform_records([application])
        values, base = self.explainer.contributions(encoded)
        folded = self.model.encoder.fold(values)
        raw_output = float(base[0] + values[0].sum())
        raw_probability = expit(raw_output) if self.explainer.unit == "log-odds" else raw_output
        default = float(self.model.calibrate(np.asarray([min(max(raw_probability, 0.0), 1.0)]))[0])
        return ExplainResponse(
            model_version=self.version,
            family=self.model.family,
            unit=self.explainer.unit,
            base_value=float(base[0]),
            raw_output=raw_output,
            default_probability=default,
            contributions=[
                Contribution(
                    field=f.name,
                    label=f.label,
                    value=application[f.name],
                    contribution=float(folded[f.name][0]),
                )
                for f in FIELDS
            ],
        )
