"""What the operator asks of MLflow: verify, evaluate, promote, look up.

Every call runs in a worker thread. Failures to reach the server become
:class:`RegistryUnavailableError` (the reconciler backs off and retries); answers
that contradict a training outcome become :class:`VerificationError`.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from dataclasses import dataclass, field
from typing import Any

from loanops.promotion import (
    CHAMPION,
    PromotionDecision,
    PromotionPolicy,
    current_version,
    evaluate_version,
    record_decision,
)

# A reconciler must learn quickly that MLflow is down; it retries on its own
# schedule, so the client's long built-in retry loop would only stall it.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "15")

DATA_HASH_TAG = "loanops.data_hash"


class RegistryUnavailableError(Exception):
    """MLflow could not be asked; try again later."""


class VerificationError(Exception):
    """MLflow contradicts what a training Job reported."""


@dataclass(frozen=True, slots=True)
class VersionInfo:
    """A registered version and what the operator shows of it."""

    version: str
    run_id: str
    metrics: dict[str, float] = field(default_factory=dict)
    data_hash: str | None = None

    def score(self, metric: str) -> float | None:
        """The version's value of ``metric``, if it has one."""
        return self.metrics.get(metric)


def _not_found(error: BaseException) -> bool:
    text = str(error)
    return "RESOURCE_DOES_NOT_EXIST" in text or "not found" in text.lower()


class ModelRegistry:
    """One MLflow client per tracking URI, called off the event loop."""

    def __init__(self, champion_ttl_seconds: float = 10.0) -> None:
        self._clients: dict[str, Any] = {}
        # Every pass asks who the champion is; within this many seconds the
        # last answer stands (the operator's own promotions update it at once).
        self._champion_ttl = champion_ttl_seconds
        self._champions: dict[tuple[str, str], tuple[float, VersionInfo | None]] = {}

    @staticmethod
    def warm_up() -> None:
        """Import the MLflow client ahead of the first call."""
        from mlflow.tracking import MlflowClient  # noqa: F401

    def _client(self, tracking_uri: str) -> Any:
        if tracking_uri not in self._clients:
            from mlflow.tracking import MlflowClient

            self._clients[tracking_uri] = MlflowClient(tracking_uri=tracking_uri)
        return self._clients[tracking_uri]

    async def _run(self, tracking_uri: str, function: Any, *args: Any, **kwargs: Any) -> Any:
        def call() -> Any:
            return function(self._client(tracking_uri), *args, **kwargs)

        try:
            return await asyncio.to_thread(call)
        except (VerificationError, LookupError):
            raise
        except Exception as error:
            raise RegistryUnavailableError(f"MLflow at {tracking_uri}: {error}") from error

    @staticmethod
    def _info(client: Any, model_name: str, version: str) -> VersionInfo:
        try:
            model_version = client.get_model_version(model_name, version)
        except Exception as error:
            if _not_found(error):
                raise LookupError(f"version {version} of {model_name!r} does not exist") from error
            raise
        run = client.get_run(model_version.run_id)
        metrics = {k: float(v) for k, v in run.data.metrics.items() if k.startswith("eval_")}
        return VersionInfo(
            version=str(model_version.version),
            run_id=str(model_version.run_id),
            metrics=metrics,
            data_hash=run.data.tags.get(DATA_HASH_TAG),
        )

    async def version(self, tracking_uri: str, model_name: str, version: str) -> VersionInfo | None:
        """The registered version, or None when it does not exist."""
        try:
            info: VersionInfo = await self._run(tracking_uri, self._info, model_name, version)
        except LookupError:
            return None
        return info

    async def champion(self, tracking_uri: str, model_name: str) -> VersionInfo | None:
        """The version the champion alias points at, or None."""
        key = (tracking_uri, model_name)
        cached = self._champions.get(key)
        if cached is not None and time.monotonic() - cached[0] < self._champion_ttl:
            return cached[1]

        def lookup(client: Any) -> VersionInfo | None:
            try:
                version = current_version(client, model_name, CHAMPION)
            except Exception as error:
                # A model not registered yet has no champion.
                if _not_found(error.__cause__ or error):
                    return None
                raise
            return None if version is None else self._info(client, model_name, version)

        result: VersionInfo | None = await self._run(tracking_uri, lookup)
        self._champions[key] = (time.monotonic(), result)
        return result

    async def verify(
        self, tracking_uri: str, model_name: str, outcome: dict[str, Any]
    ) -> VersionInfo:
        """Check a training outcome against the registry and return the version."""

        def check(client: Any) -> VersionInfo:
            version = str(outcome["version"])
            try:
                info = self._info(client, model_name, version)
            except LookupError as error:
                raise VerificationError(str(error)) from error
            if info.run_id != outcome.get("run_id"):
                raise VerificationError(
                    f"version {version} of {model_name!r} comes from run {info.run_id}, "
                    f"not from the Job's run {outcome.get('run_id')}"
                )
            for name, reported in (outcome.get("metrics") or {}).items():
                stored = info.metrics.get(name)
                if stored is None or not math.isclose(stored, float(reported), abs_tol=1e-9):
                    raise VerificationError(
                        f"metric {name} of version {version} is {stored} in MLflow, "
                        f"{reported} in the Job's outcome"
                    )
            return info

        info: VersionInfo = await self._run(tracking_uri, check)
        return info

    async def evaluate(
        self, tracking_uri: str, model_name: str, version: str, policy: PromotionPolicy
    ) -> PromotionDecision:
        """The policy's decision on ``version`` against the current champion."""
        decision: PromotionDecision = await self._run(
            tracking_uri,
            lambda client: evaluate_version(
                client, model_name=model_name, version=version, policy=policy
            ),
        )
        return decision

    async def record(
        self, tracking_uri: str, model_name: str, version: str, label: str, reason: str
    ) -> None:
        """Tag ``version`` with a decision and its reason."""
        await self._run(
            tracking_uri,
            lambda client: record_decision(
                client, model_name=model_name, version=version, label=label, reason=reason
            ),
        )

    async def promote(self, tracking_uri: str, model_name: str, version: str) -> None:
        """Point the champion alias at ``version``."""
        await self._run(
            tracking_uri,
            lambda client: client.set_registered_model_alias(model_name, CHAMPION, version),
        )
        self._champions.pop((tracking_uri, model_name), None)
