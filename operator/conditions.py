"""Status conditions in the shape ``kubectl wait --for=condition=X`` reads.

A condition's ``lastTransitionTime`` moves only when its ``status`` flips; a
new reason or message with the same status keeps the time, so "since when"
stays true.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

ConditionStatus = Literal["True", "False", "Unknown"]

READY = "Ready"
TRAINED = "Trained"
PROMOTED = "Promoted"
SERVING = "Serving"
DRIFTED = "Drifted"
LOANMODEL_CONDITIONS = (READY, TRAINED, PROMOTED, SERVING, DRIFTED)

# Reasons that mean the model needs a person's attention.
FAILURE_REASONS = frozenset(
    {
        "TrainingFailed",
        "OutcomeUnreadable",
        "VerificationFailed",
        "PinnedVersionNotFound",
        "InvalidSpec",
    }
)


def now_iso() -> str:
    """The current time as Kubernetes writes it (RFC 3339, seconds, UTC)."""
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Condition:
    """One condition as the reconciler computes it."""

    type: str
    status: ConditionStatus
    reason: str
    message: str


def merge_conditions(
    previous: Iterable[dict[str, Any]] | None,
    computed: Iterable[Condition],
    *,
    generation: int | None,
    now: str | None = None,
) -> list[dict[str, Any]]:
    """The new ``status.conditions`` list, keeping unchanged transition times."""
    before = {c.get("type"): c for c in previous or ()}
    stamp = now or now_iso()
    merged = []
    for condition in computed:
        old = before.get(condition.type)
        since = (
            old.get("lastTransitionTime") if old and old.get("status") == condition.status else None
        )
        entry: dict[str, Any] = {
            "type": condition.type,
            "status": condition.status,
            "reason": condition.reason,
            "message": condition.message,
            "lastTransitionTime": since or stamp,
        }
        if generation is not None:
            entry["observedGeneration"] = generation
        merged.append(entry)
    return merged


def find(conditions: Iterable[dict[str, Any]] | None, kind: str) -> dict[str, Any] | None:
    """The condition of type ``kind``, if present."""
    for condition in conditions or ():
        if condition.get("type") == kind:
            return condition
    return None


def derive_phase(conditions: dict[str, Condition]) -> str:
    """One word for ``kubectl get``: what the LoanModel is doing or needs."""
    if any(c.status == "False" and c.reason in FAILURE_REASONS for c in conditions.values()):
        return "Failed"
    trained = conditions.get(TRAINED)
    if trained is not None and trained.reason == "TrainingRunning":
        return "Training"
    promoted = conditions.get(PROMOTED)
    if promoted is not None and promoted.reason == "AwaitingApproval":
        return "AwaitingApproval"
    serving = conditions.get(SERVING)
    if serving is not None and serving.reason == "Rolling":
        return "Rolling"
    ready = conditions.get(READY)
    if ready is not None and ready.status == "True":
        return "Ready"
    return "Pending"
