"""Probe and metrics routes: ``/livez``, ``/readyz``, ``/health``, ``/metrics``.

None of them needs a token: kubelets and Prometheus call them.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from loanops.server.dependencies import ServerState, get_state

router = APIRouter()


@router.get("/livez", summary="The process is alive")
async def read_liveness() -> dict[str, str]:
    """Answer 200 while the process runs, loaded or not."""
    return {"status": "alive"}


def _readiness(state: ServerState) -> JSONResponse:
    body: dict[str, Any] = {"status": "ready" if state.ready else "not ready"}
    if state.scorer is not None:
        body |= {"model_name": state.scorer.name, "model_version": state.scorer.version}
    if state.problems:
        body["problems"] = state.problems
    return JSONResponse(status_code=200 if state.ready else 503, content=body)


@router.get("/readyz", summary="A model is loaded and has predicted")
async def read_readiness(state: Annotated[ServerState, Depends(get_state)]) -> JSONResponse:
    """Answer 200 once the warm-up prediction succeeded, 503 before."""
    return _readiness(state)


@router.get("/health", summary="Readiness, under the earlier system's path")
async def read_health(state: Annotated[ServerState, Depends(get_state)]) -> JSONResponse:
    """Answer exactly as /readyz does."""
    return _readiness(state)


@router.get("/metrics", summary="Prometheus metrics")
async def read_metrics(state: Annotated[ServerState, Depends(get_state)]) -> Response:
    """Return the metrics in the Prometheus text format."""
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
