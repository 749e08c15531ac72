"""Prediction routes: ``/predict``, ``/predict/batch`` and ``/explain``.

Routes stay thin: validate, score through the :class:`Scorer`, record the
decisions in the metrics and the prediction log, answer. A batch is validated
whole before anything is scored: one bad item refuses the batch, with every
bad item's index, field and reason, and nothing of it is scored or logged.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import TypeAdapter, ValidationError

from loanops.server.dependencies import ServerState, get_scorer, get_state
from loanops.server.errors import InvalidApplicationError, describe_validation_errors, request_id_of
from loanops.server.schemas import (
    PLAIN_APPLICATIONS,
    BatchRequest,
    BatchResponse,
    Decision,
    ErrorDetail,
    ErrorResponse,
    ExplainResponse,
    LoanApplication,
)
from loanops.server.scoring import ReasonsFor, Scorer

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (400, 401, 413, 422, 500, 503)
}

# The bearer token is checked by RequestContextMiddleware, before the body is read.
router = APIRouter(responses=ERROR_RESPONSES)

ReasonsQuery = Annotated[
    ReasonsFor,
    Query(
        alias="reasons",
        description=(
            "Which decisions carry reasons: 'declined' (the reasons a lender states "
            "for a decline; the default of /predict), 'all', or 'none' (the default "
            "of /predict/batch). Reasons cost a SHAP pass, about 1 ms, per row."
        ),
    ),
]
# One validator for a whole batch: pydantic-core checks the list in one call
# and reports each bad item by its position.
_BATCH_ADAPTER: TypeAdapter[list[Any]] = TypeAdapter(list[LoanApplication])


def record(
    state: ServerState,
    request: Request,
    applications: Sequence[dict[str, Any]],
    decisions: Sequence[Decision],
) -> None:
    """Count the decisions in the metrics and append them to the prediction log."""
    state.metrics.observe_decisions(
        approved=[d.approved for d in decisions],
        default_probability=[d.default_probability for d in decisions],
        applications=applications,
    )
    if state.prediction_log is None:
        return
    now = time.time()
    request_id = request_id_of(request)
    state.prediction_log.append(
        {
            "time": now,
            "request_id": request_id,
            "item": position,
            "model_name": decision.model_name,
            "model_version": decision.model_version,
            "inputs": application,
            "default_probability": decision.default_probability,
            "approval_probability": decision.approval_probability,
            "threshold": decision.threshold,
            "approved": decision.approved,
        }
        for position, (application, decision) in enumerate(
            zip(applications, decisions, strict=True)
        )
    )


def json_response(body: Decision | BatchResponse) -> Response:
    """Serialise a response model once, in pydantic-core.

    Returning a Response skips FastAPI's second validation of the returned
    model; the route's ``response_model`` still documents the shape.
    """
    return Response(content=body.model_dump_json(), media_type="application/json")


@router.post("/predict", response_model=Decision, summary="Decide on one application")
async def create_prediction(
    application: LoanApplication,
    request: Request,
    scorer: Annotated[Scorer, Depends(get_scorer)],
    state: Annotated[ServerState, Depends(get_state)],
    reasons_for: ReasonsQuery = "declined",
) -> Response:
    """Score one application: decision, both probabilities, threshold, reasons.

    Declared ``async``: scoring one row takes about a millisecond, less than
    handing the call to a worker thread would cost.
    """
    fields = application.model_dump()
    decision = scorer.score([fields], reasons_for=reasons_for)[0]
    record(state, request, [fields], [decision])
    return json_response(decision)


def validate_batch(items: list[Any], max_size: int) -> list[dict[str, Any]]:
    """Validate every item; refuse the batch with all bad items' details."""
    if not items:
        raise InvalidApplicationError(
            f"the batch is empty; send 1 to {max_size} applications",
            [ErrorDetail(field="applications", message="empty list", value=[])],
        )
    if len(items) > max_size:
        raise InvalidApplicationError(
            f"the batch holds {len(items)} applications; at most {max_size} are accepted",
            [ErrorDetail(field="applications", message=f"more than {max_size} items")],
        )
    with contextlib.suppress(ValidationError):
        # The fast path. What it refuses may still be valid (35.0 for an age):
        # LoanApplication, below, decides and names each problem.
        return PLAIN_APPLICATIONS.validate_python(items)
    try:
        return [application.model_dump() for application in _BATCH_ADAPTER.validate_python(items)]
    except ValidationError as error:
        problems: list[ErrorDetail] = []
        for problem in error.errors():
            index = int(problem["loc"][0])
            problems.extend(
                describe_validation_errors([problem], index=index, skip=1, whole="applications")
            )
        problems.sort(key=lambda detail: detail.index or 0)
        bad = sorted({p.index for p in problems if p.index is not None})
        raise InvalidApplicationError(
            f"{len(bad)} of {len(items)} applications are invalid (indexes "
            f"{', '.join(map(str, bad))}); nothing was scored",
            problems,
        ) from None


@router.post("/predict/batch", response_model=BatchResponse, summary="Decide on many")
def create_batch_prediction(
    batch: BatchRequest,
    request: Request,
    scorer: Annotated[Scorer, Depends(get_scorer)],
    state: Annotated[ServerState, Depends(get_state)],
    reasons_for: ReasonsQuery = "none",
) -> Response:
    """Score up to the configured maximum of applications in one vectorised pass.

    Reasons are off by default: a SHAP pass per row would make batch scoring
    several times slower; ask with ``?reasons=declined`` or ``?reasons=all``.
    A plain function, run in a worker thread: batches take long enough that
    the event loop should keep reading other requests meanwhile (measured:
    50 % more batch throughput than an ``async`` route under 8 connections).
    """
    applications = validate_batch(batch.applications, state.settings.max_batch_size)
    decisions = scorer.score(applications, reasons_for=reasons_for)
    state.metrics.batch_size.observe(len(applications))
    record(state, request, applications, decisions)
    return json_response(
        BatchResponse(model_version=scorer.version, count=len(decisions), decisions=decisions)
    )


@router.post("/explain", response_model=ExplainResponse, summary="Explain one decision")
def create_explanation(
    application: LoanApplication,
    scorer: Annotated[Scorer, Depends(get_scorer)],
) -> ExplainResponse:
    """Return the SHAP contribution of every input field to P(default)."""
    return scorer.explain(application.model_dump())
