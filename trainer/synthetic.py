"""A seeded generator of realistic synthetic loan applications.

Applications come out in the thirteen columns of the S4E10 data, with
marginals shaped after its published facts (category shares, medians and
quartiles of the numeric fields) and a default label drawn from a plausible
risk relation: a larger loan relative to income, renting, an earlier default
and some loan purposes raise the risk. The base rate is pinned near the real
data's 14.2%.

Shifts make drift demonstrations: scale a numeric field (``income x 0.7``) or
replace a categorical field's mix (``loan_intent`` all ``VENTURE``). Shifts
apply to the applicant fields before the label is drawn, so shifted data stay
internally consistent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.optimize import brentq
from scipy.special import expit

from loanops.errors import ConfigurationError
from loanops.schema import FIELDS_BY_NAME, CategoricalField, NumericField

# Shares of the S4E10 training data (58,645 rows).
HOME_OWNERSHIP_SHARES = {"RENT": 0.5217, "MORTGAGE": 0.4233, "OWN": 0.0535, "OTHER": 0.0015}
LOAN_INTENT_SHARES = {
    "EDUCATION": 0.2092,
    "MEDICAL": 0.1864,
    "PERSONAL": 0.1708,
    "VENTURE": 0.1707,
    "DEBTCONSOLIDATION": 0.1557,
    "HOMEIMPROVEMENT": 0.1071,
}
DEFAULT_ON_FILE_SHARES = {"N": 0.8516, "Y": 0.1484}
DEFAULT_RATE = 0.1424

# Log-odds added per category, relative to the intercept.
_HOME_RISK = {"RENT": 1.1, "MORTGAGE": -0.2, "OWN": -1.4, "OTHER": 0.6}
_INTENT_RISK = {
    "EDUCATION": -0.3,
    "MEDICAL": 0.35,
    "PERSONAL": -0.1,
    "VENTURE": -0.6,
    "DEBTCONSOLIDATION": 0.45,
    "HOMEIMPROVEMENT": 0.35,
}
_GRADES = ("A", "B", "C", "D", "E", "F", "G")

# (cumulative share, value) points of the S4E10 training data's distributions,
# nudged at the 75th percentile where rounding and the age cap pull values down.
_AGE_QUANTILES = ((0, 20), (0.05, 22), (0.25, 23), (0.5, 26), (0.75, 30), (0.95, 39), (1, 80))
_EMPLOYMENT_QUANTILES = ((0, 0), (0.05, 0), (0.25, 2), (0.5, 4), (0.75, 8), (0.95, 12), (1, 30))
_HISTORY_QUANTILES = ((0, 2), (0.05, 2), (0.25, 3), (0.5, 4), (0.75, 8.6), (0.95, 14), (1, 30))


def _from_quantiles(
    ranks: npt.NDArray[np.float64], points: tuple[tuple[float, float], ...]
) -> npt.NDArray[np.float64]:
    """Map uniform ranks through a piecewise-linear inverse CDF."""
    shares, values = zip(*points, strict=True)
    return np.asarray(np.interp(ranks, shares, values), dtype=np.float64)


@dataclass(frozen=True, slots=True)
class Shift:
    """How generated applications depart from the reference population."""

    scale: Mapping[str, float] = field(default_factory=dict)
    shares: Mapping[str, Mapping[str, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, factor in self.scale.items():
            if not isinstance(FIELDS_BY_NAME.get(name), NumericField):
                raise ConfigurationError(
                    f"cannot scale {name!r}: it is not a numeric applicant field."
                )
            if not factor > 0:
                raise ConfigurationError(f"scale of {name!r} is {factor!r}; it must be above 0.")
        for name, mix in self.shares.items():
            schema_field = FIELDS_BY_NAME.get(name)
            if not isinstance(schema_field, CategoricalField):
                raise ConfigurationError(
                    f"cannot set the mix of {name!r}: it is not a categorical applicant field."
                )
            unknown = set(mix) - set(schema_field.categories)
            if unknown or not mix or sum(mix.values()) <= 0:
                raise ConfigurationError(
                    f"mix {dict(mix)!r} of {name!r} is invalid; categories are "
                    f"{schema_field.describe_range()} with positive shares."
                )


def _draw_category(
    rng: np.random.Generator, shares: Mapping[str, float], rows: int
) -> npt.NDArray[np.object_]:
    names = list(shares)
    weights = np.asarray([shares[n] for n in names], dtype=float)
    return rng.choice(np.asarray(names, dtype=object), size=rows, p=weights / weights.sum())


def generate(rows: int, *, seed: int = 0, shift: Shift | None = None) -> pd.DataFrame:
    """Generate ``rows`` labelled applications in the S4E10 columns."""
    if rows < 1:
        raise ConfigurationError(f"rows is {rows!r}; generate at least 1.")
    shift = shift or Shift()
    rng = np.random.default_rng(seed)

    # Age, employment and credit history follow the real data's quantiles
    # (inverse CDF through the 5/25/50/75/95th percentiles); income and loan
    # amount are log-normal with the real medians and quartile spreads.
    age_rank = rng.random(rows)
    age = np.round(_from_quantiles(age_rank, _AGE_QUANTILES))
    income = np.round(rng.lognormal(np.log(58_000), 0.39, rows), -2)
    emp_length = np.minimum(
        np.round(_from_quantiles(rng.random(rows), _EMPLOYMENT_QUANTILES)), age - 16
    )
    # Larger incomes borrow more, which keeps the loan-to-income share tight.
    typical_amount = np.log(8_000) + 0.4 * np.log(income / 58_000)
    amount = np.clip(np.round(rng.lognormal(typical_amount, 0.55, rows) / 25) * 25, 500, 35_000)
    # Credit history grows with age: its rank mostly follows the age rank.
    history_rank = np.clip(0.85 * age_rank + 0.15 * rng.random(rows), 0, 1)
    history = np.round(_from_quantiles(history_rank, _HISTORY_QUANTILES))

    frame = pd.DataFrame(
        {
            "person_age": age,
            "person_income": income,
            "person_home_ownership": _draw_category(rng, HOME_OWNERSHIP_SHARES, rows),
            "person_emp_length": emp_length,
            "loan_intent": _draw_category(rng, LOAN_INTENT_SHARES, rows),
            "loan_amnt": amount,
            "cb_person_default_on_file": _draw_category(rng, DEFAULT_ON_FILE_SHARES, rows),
            "cb_person_cred_hist_length": history,
        }
    )
    for name, factor in shift.scale.items():
        frame[name] = frame[name] * factor
        scaled = FIELDS_BY_NAME[name]
        if isinstance(scaled, NumericField) and scaled.integer:
            frame[name] = np.round(frame[name])
    for name, mix in shift.shares.items():
        frame[name] = _draw_category(rng, mix, rows)
    frame["loan_percent_income"] = np.round(frame["loan_amnt"] / frame["person_income"], 2)

    risk = _risk_score(frame) + rng.normal(0, 0.6, rows)
    # Pin the base rate: the intercept that makes the mean default rate match.
    intercept = brentq(lambda b: float(expit(risk + b).mean()) - DEFAULT_RATE, -20, 20)
    default_probability = expit(risk + intercept)
    frame["loan_status"] = (rng.random(rows) < default_probability).astype(int)

    # Lender-set columns, never features, kept so files look like the source.
    grade_index = np.clip(np.floor(default_probability * 9 + rng.normal(0, 0.7, rows)), 0, 6)
    frame["loan_grade"] = np.asarray(_GRADES, dtype=object)[grade_index.astype(int)]
    frame["loan_int_rate"] = np.round(7.5 + 2.2 * grade_index + rng.normal(0, 0.8, rows), 2)
    frame.insert(0, "id", np.arange(rows))
    columns = [
        "id", "person_age", "person_income", "person_home_ownership", "person_emp_length",
        "loan_intent", "loan_grade", "loan_amnt", "loan_int_rate", "loan_percent_income",
        "cb_person_default_on_file", "cb_person_cred_hist_length", "loan_status",
    ]  # fmt: skip
    frame = frame[columns]
    for name in ("person_age", "person_income", "loan_amnt", "cb_person_cred_hist_length"):
        frame[name] = frame[name].astype("int64")
    return frame


def _risk_score(frame: pd.DataFrame) -> npt.NDArray[np.float64]:
    """Log-odds of default, up to an intercept, for generated applicants."""
    ratio = frame["loan_percent_income"].to_numpy(dtype=float)
    income = frame["person_income"].to_numpy(dtype=float)
    return np.asarray(
        9.0 * np.minimum(ratio, 0.6)
        - 0.6 * np.log(income / 58_000)
        + frame["person_home_ownership"].map(_HOME_RISK).to_numpy(dtype=float)
        + frame["loan_intent"].map(_INTENT_RISK).to_numpy(dtype=float)
        + np.where(frame["cb_person_default_on_file"] == "Y", 1.0, 0.0)
        - 0.04 * frame["person_emp_length"].to_numpy(dtype=float),
        dtype=float,
    )
