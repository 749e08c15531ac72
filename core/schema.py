"""The applicant feature schema shared by the trainer, the server and drift checks.

One definition of the nine fields a loan application is scored on: their types,
accepted ranges and categories and human-readable labels. The trainer validates
its data against it, the server builds its request model from it and the drift
check bins by it, so the three can never disagree about what a valid
application is.

``loan_grade`` and ``loan_int_rate`` are set by the lender after underwriting
and ``id`` is a row key: none of them is ever a feature.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

TARGET: Final = "loan_status"
"""Label column: 1 means the loan defaulted; the models estimate P(default)."""

NEVER_FEATURES: Final = ("id", "loan_grade", "loan_int_rate")
"""Columns of the source data that are known only after scoring, or are keys."""


@dataclass(frozen=True, slots=True)
class NumericField:
    """A numeric applicant field with an inclusive accepted range."""

    name: str
    label: str
    minimum: float
    maximum: float
    integer: bool
    unit: str = ""
    kind: Literal["numeric"] = "numeric"

    def describe_range(self) -> str:
        """Say in words which values are accepted, for error messages."""
        number = "an integer" if self.integer else "a number"
        low = int(self.minimum) if self.integer else self.minimum
        high = int(self.maximum) if self.integer else self.maximum
        return f"{number} from {low} to {high}"


@dataclass(frozen=True, slots=True)
class CategoricalField:
    """A categorical applicant field with a closed set of categories."""

    name: str
    label: str
    categories: tuple[str, ...]
    kind: Literal["categorical"] = "categorical"

    def describe_range(self) -> str:
        """Say in words which values are accepted, for error messages."""
        return "one of " + ", ".join(self.categories)


Field = NumericField | CategoricalField

# Ranges: wide enough for every real applicant, narrow enough to catch unit
# mistakes. Ages start at 18 inclusive (the age of contract) and stop at 120;
# nothing downstream may bin a valid age out of range.
FIELDS: Final[tuple[Field, ...]] = (
    NumericField("person_age", "Age", 18, 120, integer=True, unit="years"),
    NumericField("person_income", "Annual income", 1, 100_000_000, integer=False, unit="USD"),
    CategoricalField(
        "person_home_ownership", "Home ownership", ("RENT", "OWN", "MORTGAGE", "OTHER")
    ),
    NumericField("person_emp_length", "Employment length", 0, 100, integer=False, unit="years"),
    CategoricalField(
        "loan_intent",
        "Loan purpose",
        (
            "EDUCATION",
            "MEDICAL",
            "PERSONAL",
            "VENTURE",
            "DEBTCONSOLIDATION",
            "HOMEIMPROVEMENT",
        ),
    ),
    NumericField("loan_amnt", "Loan amount", 1, 10_000_000, integer=False, unit="USD"),
    NumericField(
        "loan_percent_income", "Loan as a share of income", 0, 10, integer=False, unit="ratio"
    ),
    CategoricalField("cb_person_default_on_file", "Earlier default on file", ("Y", "N")),
    NumericField(
        "cb_person_cred_hist_length", "Credit history length", 0, 100, integer=True, unit="years"
    ),
)

FEATURE_NAMES: Final = tuple(field.name for field in FIELDS)
NUMERIC_FIELDS: Final = tuple(f for f in FIELDS if isinstance(f, NumericField))
CATEGORICAL_FIELDS: Final = tuple(f for f in FIELDS if isinstance(f, CategoricalField))
FIELDS_BY_NAME: Final = {field.name: field for field in FIELDS}


def describe_schema() -> list[dict[str, object]]:
    """Return the schema as plain data, to be stored with every model version."""
    described: list[dict[str, object]] = []
    for field in FIELDS:
        if isinstance(field, NumericField):
            described.append(
                {
                    "name": field.name,
                    "label": field.label,
                    "kind": field.kind,
                    "minimum": field.minimum,
                    "maximum": field.maximum,
                    "integer": field.integer,
                    "unit": field.unit,
                }
            )
        else:
            described.append(
                {
                    "name": field.name,
                    "label": field.label,
                    "kind": field.kind,
                    "categories": list(field.categories),
                }
            )
    return described


def schema_dtypes() -> dict[str, str]:
    """Return the pandas dtype of each field: int64, float64 or str."""
    return {
        field.name: (
            ("int64" if field.integer else "float64") if isinstance(field, NumericField) else "str"
        )
        for field in FIELDS
    }
