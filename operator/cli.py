"""``loanops operator``: run the kopf operator against the configured cluster."""

from __future__ import annotations

import asyncio
import logging

import kopf

from loanops.operator.handlers import Controller, build_registry
from loanops.operator.kube import Kube, load_configuration
from loanops.operator.settings import OperatorSettings

logger = logging.getLogger(__name__)


def run_operator(
    *,
    namespaces: list[str],
    standalone: bool,
    liveness: str | None,
    metrics_port: int | None,
) -> None:
    """Run until SIGTERM or SIGINT: watch, reconcile, expose metrics and liveness."""
    load_configuration()
    overrides = {"metrics_port": metrics_port} if metrics_port is not None else {}
    settings = OperatorSettings(**overrides)  # type: ignore[arg-type]
    controller = Controller(settings, Kube())
    registry = build_registry(controller)
    scope = ", ".join(namespaces) if namespaces else "all namespaces"
    logger.info("Watching LoanModels and DriftPolicies in %s.", scope)
    asyncio.run(
        kopf.operator(
            registry=registry,
            standalone=standalone,
            namespaces=namespaces,
            clusterwide=not namespaces,
            liveness_endpoint=liveness,
        )
    )
