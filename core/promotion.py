"""The promotion policy: when a registered version may become the champion.

A policy names an evaluation metric, the minimum value a candidate must reach
and the minimum improvement over the current champion. :func:`decide` is the
pure rule; :func:`promote_version` reads the metrics from MLflow, applies the
rule, records the decision and its reason as tags on the version and moves the
``champion`` alias when the decision is to promote. ``loanops promote``, the
quickstart and the operator all go through :func:`promote_version`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

from loanops.errors import ConfigurationError, RegistryError

logger = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
DECISION_TAG = "loanops.promotion.decision"
REASON_TAG = "loanops.promotion.reason"

EVAL_METRICS = (
    "eval_roc_auc",
    "eval_pr_auc",
    "eval_f1",
    "eval_precision",
    "eval_recall",
    "eval_accuracy",
    "eval_brier",
    "eval_log_loss",
)
LOWER_IS_BETTER = frozenset({"eval_brier", "eval_log_loss"})

Decision = Literal["promote", "reject"]


@dataclass(frozen=True, slots=True)
class PromotionPolicy:
    """What a candidate must achieve to replace the champion."""

    metric: str = "eval_roc_auc"
    minimum: float | None = None
    min_improvement: float = 0.0

    def __post_init__(self) -> None:
        if self.metric not in EVAL_METRICS:
            raise ConfigurationError(
                f"promotion metric {self.metric!r} is unknown; accepted: {', '.join(EVAL_METRICS)}."
            )
        if self.min_improvement < 0:
            raise ConfigurationError(
                f"min_improvement {self.min_improvement!r} is negative; use 0 or more."
            )

    @property
    def lower_is_better(self) -> bool:
        """Whether a smaller value of the metric is the better one."""
        return self.metric in LOWER_IS_BETTER


@dataclass(frozen=True, slots=True)
class PromotionDecision:
    """The outcome of the policy for one candidate version."""

    decision: Decision
    reason: str
    metric: str
    candidate_value: float
    champion_value: float | None = None
    champion_version: str | None = None

    @property
    def promote(self) -> bool:
        """Whether the candidate should become the champion."""
        return self.decision == "promote"


def decide(
    policy: PromotionPolicy,
    *,
    candidate_value: float,
    champion_value: float | None,
    champion_version: str | None = None,
) -> PromotionDecision:
    """Apply ``policy`` to a candidate's metric value and the champion's."""
    name = policy.metric
    sign = -1.0 if policy.lower_is_better else 1.0

    def result(decision: Decision, reason: str) -> PromotionDecision:
        return PromotionDecision(
            decision=decision,
            reason=reason,
            metric=name,
            candidate_value=candidate_value,
            champion_value=champion_value,
            champion_version=champion_version,
        )

    if policy.minimum is not None and sign * (candidate_value - policy.minimum) < 0:
        bound = "at most" if policy.lower_is_better else "at least"
        return result(
            "reject",
            f"{name} {candidate_value:.4f} misses the minimum: it must be {bound} "
            f"{policy.minimum:.4f}",
        )
    if champion_value is None:
        return result("promote", f"{name} {candidate_value:.4f} meets the policy; no champion yet")

    improvement = sign * (candidate_value - champion_value)
    if improvement < policy.min_improvement or (policy.min_improvement == 0 and improvement <= 0):
        return result(
            "reject",
            f"{name} {candidate_value:.4f} does not beat champion v{champion_version} "
            f"({champion_value:.4f}) by the required {policy.min_improvement:.4f}",
        )
    return result(
        "promote",
        f"{name} {candidate_value:.4f} beats champion v{champion_version} "
        f"({champion_value:.4f}) by {improvement:.4f}",
    )


def _version_metric(client: Any, model_name: str, version: str, metric: str) -> float:
    model_version = client.get_model_version(model_name, version)
    run = client.get_run(model_version.run_id)
    if metric not in run.data.metrics:
        raise RegistryError(
            f"version {version} of {model_name!r} has no metric {metric!r} in run "
            f"{model_version.run_id}; was it registered by loanops train?"
        )
    return float(run.data.metrics[metric])


def current_version(client: Any, model_name: str, alias: str) -> str | None:
    """Return the version ``alias`` points at, or None when it is not set."""
    try:
        return str(client.get_model_version_by_alias(model_name, alias).version)
    except Exception as error:
        if "RESOURCE_DOES_NOT_EXIST" in str(error) or "not found" in str(error).lower():
            return None
        raise RegistryError(
            f"could not read alias {alias!r} of model {model_name!r}: {error}"
        ) from error


def evaluate_version(
    client: Any, *, model_name: str, version: str, policy: PromotionPolicy
) -> PromotionDecision:
    """Apply ``policy`` to ``version`` against the current champion, changing nothing."""
    candidate = _version_metric(client, model_name, version, policy.metric)
    champion = current_version(client, model_name, CHAMPION)
    champion_value = None
    if champion is not None and champion != version:
        champion_value = _version_metric(client, model_name, champion, policy.metric)
    elif champion == version:
        champion = None
    return decide(
        policy,
        candidate_value=candidate,
        champion_value=champion_value,
        champion_version=champion,
    )


def record_decision(client: Any, *, model_name: str, version: str, label: str, reason: str) -> None:
    """Write a decision and its reason as tags on the version."""
    client.set_model_version_tag(model_name, version, DECISION_TAG, label)
    client.set_model_version_tag(model_name, version, REASON_TAG, reason)


def promote_version(
    client: Any,
    *,
    model_name: str,
    version: str | None,
    policy: PromotionPolicy,
    apply: bool = True,
) -> tuple[str, PromotionDecision]:
    """Decide whether ``version`` (default: the challenger) becomes champion.

    The decision and reason are written as tags on the version. With
    ``apply=False`` (a dry run) they are tagged but no alias moves. Returns
    the version decided on and the decision.
    """
    if version is None:
        version = current_version(client, model_name, CHALLENGER)
        if version is None:
            raise RegistryError(
                f"model {model_name!r} has no {CHALLENGER!r} version to promote; "
                "train one first or pass --version."
            )
    decision = evaluate_version(client, model_name=model_name, version=version, policy=policy)
    label = decision.decision if apply else f"dry-run-{decision.decision}"
    record_decision(
        client, model_name=model_name, version=version, label=label, reason=decision.reason
    )
    if apply and decision.promote:
        client.set_registered_model_alias(model_name, CHAMPION, version)
        logger.info("Promoted %s version %s to champion: %s.", model_name, version, decision.reason)
    else:
        logger.info("Kept %s version %s out of champion: %s.", model_name, version, decision.reason)
    return version, decision
