"""Scoring applications with the served model version, with reasons.

The :class:`Scorer` works on validated applications as plain dictionaries and
never builds a DataFrame: the encoder writes them straight into a float
matrix. Decisions come from one vectorised prediction; reasons (TreeSHAP
contributions) cost several times more per row, so they are computed only for
the rows that need them. By default those are the declined applications,
whose reasons against approval a lender must be able to state; callers may
ask for reasons on every row or on none.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import TypeAdapter
from scipy.special import expit

from loanops.artifacts import LoadedModel
from loanops.explanations import Explainer
from loanops.schema import FIELDS, FIELDS_BY_NAME, NumericField
from loanops.server.schemas import Contribution, Decision, ExplainResponse, Reason

ReasonsFor = Literal["declined", "all", "none"]
_DECISIONS: TypeAdapter[list[Decision]] = TypeAdapter(list[Decision])


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

    def score(
        self, applications: Sequence[Mapping[str, Any]], *, reasons_for: ReasonsFor = "declined"
    ) -> list[Decision]:
        """Return one decision per application, with reasons where asked for."""
        encoded = self.model.encoder.transform_records(applications)
        default = self.model.default_probability_encoded(encoded)
        declined = default >= self.threshold
        if reasons_for == "all":
            explained = np.arange(len(applications))
        elif reasons_for == "declined":
            explained = np.flatnonzero(declined)
        else:
            explained = np.arange(0)
        reasons: dict[int, list[Reason]] = {}
        if explained.size:
            values, _ = self.explainer.contributions(encoded[explained])
            folded = self.model.encoder.fold(values)
            for position, row in enumerate(explained.tolist()):
                reasons[row] = self._reasons(applications[row], folded, position)

        # Validated in one call of pydantic-core from plain dicts: about three
        # times faster than model_construct per decision. Plain Python floats
        # and bools (tolist) are cheaper to read per row than numpy scalars.
        defaults: list[float] = default.tolist()
        declines: list[bool] = declined.tolist()
        return _DECISIONS.validate_python(
            [
                {
                    "approved": not declines[row],
                    "decision": "declined" if declines[row] else "approved",
                    "default_probability": defaults[row],
                    "approval_probability": 1.0 - defaults[row],
                    "probability": 1.0 - defaults[row],
                    "threshold": self.threshold,
                    "model_name": self.name,
                    "model_version": self.version,
                    "reasons": reasons.get(row, []),
                }
                for row in range(len(applications))
            ]
        )

    def _reasons(
        self,
        application: Mapping[str, Any],
        folded: dict[str, npt.NDArray[np.float64]],
        position: int,
    ) -> list[Reason]:
        """Return the fields that raised P(default) most, largest first."""
        pushes = sorted(
            ((float(values[position]), name) for name, values in folded.items()), reverse=True
        )
        return [
            Reason.model_construct(
                field=name,
                label=FIELDS_BY_NAME[name].label,
                value=application[name],
                contribution=contribution,
                text=_describe(name, application[name]),
            )
            for contribution, name in pushes[: self.top_reasons]
            if contribution > 0
        ]

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
