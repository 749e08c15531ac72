"""Kubernetes Events about loanops objects, with stable reasons.

Events are posted by the operator itself (not queued behind the handlers), so
a reconciliation's Events are in the API by the time its status is.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any, Literal

from loanops.operator.conditions import now_iso
from loanops.operator.kube import Kube, KubeError

logger = logging.getLogger(__name__)

COMPONENT = "loanops-operator"
EventType = Literal["Normal", "Warning"]


class EventRecorder:
    """Posts core/v1 Events about an object; a failure to post is logged, never raised."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube

    async def emit(self, body: dict[str, Any], kind: EventType, reason: str, message: str) -> None:
        meta = body["metadata"]
        stamp = now_iso()
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{meta['name']}.{uuid.uuid4().hex[:16]}",
                "namespace": meta["namespace"],
            },
            "involvedObject": {
                "apiVersion": body.get("apiVersion"),
                "kind": body.get("kind"),
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            },
            "type": kind,
            "reason": reason,
            # The API refuses messages over 1 KiB.
            "message": message[:1024],
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        log = logger.warning if kind == "Warning" else logger.info
        log("%s %s/%s: %s: %s", body.get("kind"), meta["namespace"], meta["name"], reason, message)
        try:
            await self.kube.call("POST", f"/api/v1/namespaces/{meta['namespace']}/events", event)
        except KubeError as error:
            logger.warning("Could not post Event %s for %s: %s", reason, meta["name"], error)
