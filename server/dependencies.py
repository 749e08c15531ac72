"""FastAPI dependencies: the server's state and its scorer.

All are ``async``: FastAPI runs plain functions in a worker thread, a hop that
costs more than the dependencies themselves on every request.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import Request

from loanops.server.errors import NotReadyError
from loanops.server.metrics import ServerMetrics
from loanops.server.predictions import PredictionLog
from loanops.server.scoring import Scorer
from loanops.server.settings import ServerSettings


@dataclass
class ServerState:
    """What the routes share: settings, metrics, and once loaded the scorer."""

    settings: ServerSettings
    metrics: ServerMetrics
    prediction_log: PredictionLog | None = None
    scorer: Scorer | None = None
    ready: bool = False
    problems: list[str] = field(default_factory=list)


async def get_state(request: Request) -> ServerState:
    """Return the application's state."""
    state: ServerState = request.app.state.loanops
    return state


async def get_scorer(request: Request) -> Scorer:
    """Return the scorer, or answer 503 while no model is ready."""
    state: ServerState = request.app.state.loanops
    if not state.ready or state.scorer is None:
        raise NotReadyError("no model is loaded yet; retry when /readyz answers 200")
    return state.scorer
