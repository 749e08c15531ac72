"""Building the prediction server's FastAPI application.

:func:`create_app` wires settings, metrics, routes, error handlers and the
lifespan. The lifespan loads the one model version to serve (unless a
scorer is handed in), runs a warm-up prediction, starts the prediction log
and only then marks the server ready; on shutdown (SIGTERM included, through
uvicorn) it closes the prediction log, which ships the open chunk.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from loanops import __version__
from loanops.artifacts import load_model
from loanops.server import api, probes, web
from loanops.server.dependencies import ServerState
from loanops.server.errors import install_handlers
from loanops.server.metrics import ServerMetrics
from loanops.server.middleware import RequestContextMiddleware
from loanops.server.predictions import PredictionLog
from loanops.server.scoring import Scorer
from loanops.server.settings import ServerSettings

logger = logging.getLogger(__name__)

# A valid application used to prove the model can predict before readiness.
WARM_UP_APPLICATION: dict[str, Any] = {
    "person_age": 30,
    "person_income": 60000.0,
    "person_home_ownership": "RENT",
    "person_emp_length": 4.0,
    "loan_intent": "PERSONAL",
    "loan_amnt": 8000.0,
    "loan_percent_income": 0.13,
    "cb_person_default_on_file": "N",
    "cb_person_cred_hist_length": 5,
}


def load_scorer(settings: ServerSettings) -> Scorer:
    """Load the configured model version into a scorer."""
    loaded = load_model(settings.model_uri)
    return Scorer(loaded, top_reasons=settings.top_reasons, threads=settings.prediction_threads)


def create_app(settings: ServerSettings, *, scorer: Scorer | None = None) -> FastAPI:
    """Build the application; ``scorer`` skips loading (it must be loaded already)."""
    metrics = ServerMetrics(approval_window=settings.approval_window)
    state = ServerState(settings=settings, metrics=metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.scorer = scorer or load_scorer(settings)
        state.scorer.score([WARM_UP_APPLICATION], reasons_for="all")
        metrics.model_info.labels(name=state.scorer.name or "", version=state.scorer.version).set(1)
        if settings.prediction_log.uri:
            state.prediction_log = PredictionLog(settings.prediction_log)
            state.prediction_log.start()
        else:
            logger.warning("No prediction log configured: decisions are not recorded for drift.")
        state.ready = True
        logger.info(
            "Serving %s (threshold %.4f on P(default)).",
            state.scorer.loaded.label,
            state.scorer.threshold,
        )
        try:
            yield
        finally:
            state.ready = False
            if state.prediction_log is not None:
                state.prediction_log.close()

    # FastAPIOffline: /docs must work where the CDN of Swagger UI is out of reach.
    app = FastAPIOffline(
        title="loanops prediction server",
        version=__version__,
        summary="Loan decisions from one exact model version, with reasons.",
        lifespan=lifespan,
    )
    app.state.loanops = state
    install_handlers(app, on_server_error=lambda kind: metrics.errors.labels(kind=kind).inc())
    app.include_router(api.router)
    app.include_router(probes.router)
    app.include_router(web.router)
    app.add_middleware(
        RequestContextMiddleware,
        metrics=metrics,
        max_body_bytes=settings.max_body_bytes,
        api_token=settings.api_token,
    )
    return app
