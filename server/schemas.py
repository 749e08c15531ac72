"""Request and response bodies of the prediction API.

The request model is built from the shared feature schema, so the nine fields,
their ranges and categories are defined once. Validation is strict: numbers
must be JSON numbers (no strings, no booleans), integer fields take integral
values only (``35`` and ``35.0`` alike), non-finite values are refused, and
unknown fields are errors. The earlier system's request body is exactly the
nine fields, so its clients keep working.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal, TypedDict

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    create_model,
    model_validator,
    with_config,
)
from pydantic_core import PydanticCustomError, PydanticKnownError

from loanops.schema import FIELDS, CategoricalField, NumericField


def _strict_number(schema_field: NumericField) -> Any:
    integer = schema_field.integer

    def check(value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError("must be a JSON number")
        try:
            finite = math.isfinite(value)
        except OverflowError:  # an integer beyond any float: far out of range
            raise ValueError("is far too large") from None
        if not finite:
            raise ValueError("must be a finite number")
        if integer and isinstance(value, float):
            if not value.is_integer():
                raise ValueError("must be a whole number")
            # Out-of-range floats are refused here with the range error: the
            # core's integer parser would call those beyond 64 bits unparsable.
            if value < schema_field.minimum:
                raise PydanticKnownError("greater_than_equal", {"ge": schema_field.minimum})
            if value > schema_field.maximum:
                raise PydanticKnownError("less_than_equal", {"le": schema_field.maximum})
        # Returned as sent: the core converts it (35.0 to 35, 35 to 35.0), and
        # range errors then echo the value the client sent.
        return value

    return check


def _field_annotation(schema_field: NumericField | CategoricalField) -> Any:
    if isinstance(schema_field, CategoricalField):
        return Annotated[
            Literal[schema_field.categories],
            Field(description=f"{schema_field.label}: {schema_field.describe_range()}."),
        ]
    python_type = int if schema_field.integer else float
    unit = f" ({schema_field.unit})" if schema_field.unit else ""
    # Field (with the range) before the BeforeValidator: so placed, pydantic
    # compiles the range into the core validator; placed after, it runs as two
    # Python calls per field, a third of the cost of validating a batch.
    return Annotated[
        python_type,
        Field(
            ge=schema_field.minimum,
            le=schema_field.maximum,
            description=f"{schema_field.label}{unit}: {schema_field.describe_range()}.",
        ),
        BeforeValidator(_strict_number(schema_field)),
    ]


class _StrictBody(BaseModel):
    model_config = ConfigDict(extra="forbid")


LoanApplication: type[BaseModel] = create_model(  # type: ignore[call-overload]
    "LoanApplication",
    __base__=_StrictBody,
    __doc__="One loan application: the nine applicant fields, nothing else.",
    **{f.name: (_field_annotation(f), ...) for f in FIELDS},
)


def _plain_annotation(schema_field: NumericField | CategoricalField) -> Any:
    if isinstance(schema_field, CategoricalField):
        return Literal[schema_field.categories]
    # Strict: an integer field takes Python ints only (35.0 is refused here,
    # though LoanApplication takes it), a float field ints and floats; never
    # a bool or a string.
    return Annotated[
        int if schema_field.integer else float,
        Field(strict=True, ge=schema_field.minimum, le=schema_field.maximum, allow_inf_nan=False),
    ]


def _plain_applications_type() -> Any:
    """``list`` of a TypedDict of the nine fields, built from the schema at run time."""
    fields = {f.name: _plain_annotation(f) for f in FIELDS}
    item = TypedDict("PlainApplication", fields)  # type: ignore[misc]
    return list[with_config(ConfigDict(extra="forbid"))(item)]  # type: ignore[misc]


# The fast way to validate many applications: checked in the core only, no
# Python call per field, and giving plain dicts. It accepts a subset of what
# LoanApplication accepts, with the same values; whatever it refuses goes to
# LoanApplication, which decides and names each problem.
PLAIN_APPLICATIONS: TypeAdapter[list[dict[str, Any]]] = TypeAdapter(_plain_applications_type())

# The application shown in the OpenAPI docs (and the README): the first row
# of the S4E10 training data, a repaid loan.
EXAMPLE_APPLICATION: dict[str, Any] = {
    "person_age": 37,
    "person_income": 35000,
    "person_home_ownership": "RENT",
    "person_emp_length": 0.0,
    "loan_intent": "EDUCATION",
    "loan_amnt": 6000,
    "loan_percent_income": 0.17,
    "cb_person_default_on_file": "N",
    "cb_person_cred_hist_length": 14,
}
LoanApplication.model_config["json_schema_extra"] = {"examples": [EXAMPLE_APPLICATION]}
LoanApplication.model_rebuild(force=True)


class Reason(BaseModel):
    """One input field's push on P(default), in plain words and in SHAP units."""

    field: str
    label: str
    value: int | float | str
    contribution: float = Field(description="SHAP contribution to the raw P(default) output.")
    text: str


class Decision(BaseModel):
    """The decision on one application and the numbers behind it."""

    approved: bool = Field(description="True when P(default) is below the threshold.")
    decision: Literal["approved", "declined"]
    default_probability: float = Field(description="Calibrated P(default): loan_status = 1.")
    approval_probability: float = Field(description="1 - default_probability.")
    probability: float = Field(
        description="Kept for older clients: the same number as approval_probability."
    )
    threshold: float = Field(description="P(default) at or above which applications decline.")
    model_name: str | None
    model_version: str
    reasons: list[Reason] = Field(
        description=(
            "Fields that raised P(default) the most: the reasons against approval. "
            "By default given for declined applications only (see the reasons parameter)."
        )
    )


class BatchRequest(_StrictBody):
    """Several applications scored in one call."""

    applications: list[Any] = Field(
        description="Applications, each with the nine fields of LoanApplication."
    )

    @model_validator(mode="before")
    @classmethod
    def _only_applications(cls, data: Any) -> Any:
        # Said here rather than by extra="forbid", whose message would speak
        # of an application's fields.
        if isinstance(data, dict) and (unknown := sorted(set(data) - {"applications"})):
            raise PydanticCustomError(
                "batch_unknown_field",
                "unknown field(s) {names}; the body holds only 'applications'",
                {"names": ", ".join(repr(name) for name in unknown[:10])},
            )
        return data


class BatchResponse(BaseModel):
    """Decisions in the order of the request's applications."""

    model_version: str
    count: int
    decisions: list[Decision]


class Contribution(BaseModel):
    """SHAP contribution of one input field (its one-hot parts summed)."""

    field: str
    label: str
    value: int | float | str
    contribution: float


class ExplainResponse(BaseModel):
    """SHAP explanation of one decision."""

    model_version: str
    family: str
    unit: Literal["log-odds", "probability"] = Field(
        description="Unit of base_value, contributions and raw_output, all towards P(default)."
    )
    base_value: float
    raw_output: float = Field(description="base_value + sum(contributions): the estimator output.")
    default_probability: float = Field(description="Calibrated P(default) of the application.")
    contributions: list[Contribution]


class ErrorDetail(BaseModel):
    """One problem with a request: where, what was sent, what is accepted."""

    field: str
    message: str
    value: Any = None
    index: int | None = None


class ErrorResponse(BaseModel):
    """Body of every 4xx and 5xx answer."""

    error: str
    message: str
    request_id: str | None = None
    details: list[ErrorDetail] = []
