"""A small asynchronous view of the Kubernetes API, on the official client.

The operator reads and writes plain JSON manifests (it builds them whole in
:mod:`loanops.operator.children`), so it talks to the REST paths directly
through :class:`kubernetes.client.ApiClient`, which brings authentication,
TLS and the kubeconfig / in-cluster configuration. Calls run in threads so
the kopf event loop never blocks.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from dataclasses import dataclass
from typing import Any

import kubernetes

from loanops.errors import ConfigurationError
from loanops.operator.resources import DRIFTPOLICIES, GROUP, LOANMODELS, VERSION

logger = logging.getLogger(__name__)

MERGE_PATCH = "application/merge-patch+json"


@dataclass(frozen=True, slots=True)
class Kind:
    """Where the objects of one resource live in the API."""

    prefix: str
    plural: str

    def path(self, namespace: str, name: str | None = None, subresource: str | None = None) -> str:
        path = f"{self.prefix}/namespaces/{namespace}/{self.plural}"
        if name is not None:
            path += f"/{name}"
        if subresource is not None:
            path += f"/{subresource}"
        return path


LOANMODEL = Kind(f"/apis/{GROUP}/{VERSION}", LOANMODELS)
DRIFTPOLICY = Kind(f"/apis/{GROUP}/{VERSION}", DRIFTPOLICIES)
JOB = Kind("/apis/batch/v1", "jobs")
CRONJOB = Kind("/apis/batch/v1", "cronjobs")
DEPLOYMENT = Kind("/apis/apps/v1", "deployments")
SERVICE = Kind("/api/v1", "services")
POD = Kind("/api/v1", "pods")
KINDS = {
    "LoanModel": LOANMODEL,
    "DriftPolicy": DRIFTPOLICY,
    "Job": JOB,
    "CronJob": CRONJOB,
    "Deployment": DEPLOYMENT,
    "Service": SERVICE,
    "Pod": POD,
}


class KubeError(Exception):
    """An API call failed; ``status`` is the HTTP status (0 when unreachable)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


def load_configuration() -> None:
    """Configure the client from inside a pod, else from the kubeconfig."""
    try:
        kubernetes.config.load_incluster_config()
        return
    except kubernetes.config.ConfigException:
        pass
    # $KUBECONFIG is read here, not when the client was imported.
    path = os.environ.get("KUBECONFIG") or None
    try:
        kubernetes.config.load_kube_config(config_file=path)
    except (kubernetes.config.ConfigException, OSError) as error:
        where = path or "~/.kube/config"
        raise ConfigurationError(
            f"no Kubernetes API to talk to: not inside a pod, and the kubeconfig at {where} "
            f"is unusable ({error}); set KUBECONFIG or run the operator in the cluster."
        ) from error


class Kube:
    """JSON in, JSON out, over the client's configured connection."""

    def __init__(
        self,
        api_client: kubernetes.client.ApiClient | None = None,
        *,
        request_timeout: float = 30.0,
    ) -> None:
        self.api = api_client if api_client is not None else kubernetes.client.ApiClient()
        self.request_timeout = request_timeout

    def _call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        query: list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        headers = {"Accept": "application/json", "Content-Type": content_type}
        try:
            response = self.api.call_api(
                path,
                method,
                query_params=query or [],
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
                _preload_content=False,
                _request_timeout=self.request_timeout,
            )
        except kubernetes.client.ApiException as error:
            raise KubeError(
                f"{method} {path}: {error.status} {error.reason}", error.status or 0
            ) from error
        except Exception as error:  # urllib3 connection errors and the like
            raise KubeError(f"{method} {path}: {error}") from error
        raw = response[0].data if isinstance(response, tuple) else response.data
        return json.loads(raw) if raw else {}

    async def call(
        self, method: str, path: str, body: Any = None, **options: Any
    ) -> dict[str, Any]:
        """One API request in a worker thread."""
        return await asyncio.to_thread(self._call, method, path, body, **options)

    async def get(self, kind: Kind, namespace: str, name: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        try:
            return await self.call("GET", kind.path(namespace, name))
        except KubeError as error:
            if error.status == 404:
                return None
            raise

    async def list(
        self, kind: Kind, namespace: str, labels: dict[str, str] | None = None
    ) -> list[dict[str, Any]]:
        """Objects of ``kind`` in ``namespace`` carrying all of ``labels``."""
        query = []
        if labels:
            query.append(("labelSelector", ",".join(f"{k}={v}" for k, v in labels.items())))
        items = (await self.call("GET", kind.path(namespace), query=query)).get("items", [])
        # Filtered here as well: the selector is an optimisation, not a contract
        # every API server (or emulator) honours.
        wanted = labels or {}
        return [
            item
            for item in items
            if all(
                item.get("metadata", {}).get("labels", {}).get(k) == v for k, v in wanted.items()
            )
        ]

    async def create(self, manifest: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Create ``manifest``; on a name conflict return the existing object.

        The second value tells whether this call created it.
        """
        kind = KINDS[manifest["kind"]]
        meta = manifest["metadata"]
        try:
            return await self.call("POST", kind.path(meta["namespace"]), manifest), True
        except KubeError as error:
            if error.status != 409:
                raise
        existing = await self.get(kind, meta["namespace"], meta["name"])
        if existing is None:  # deleted between the two calls; the next pass retries
            raise KubeError(f"{manifest['kind']} {meta['name']} conflicted and vanished", 409)
        return existing, False

    async def patch(
        self,
        kind: Kind,
        namespace: str,
        name: str,
        patch: dict[str, Any],
        *,
        subresource: str | None = None,
    ) -> dict[str, Any]:
        """A JSON merge patch (lists are replaced whole, as built)."""
        return await self.call(
            "PATCH", kind.path(namespace, name, subresource), patch, content_type=MERGE_PATCH
        )

    async def delete(self, kind: Kind, namespace: str, name: str) -> None:
        """Delete with its dependents in the background; a missing object is fine."""
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}
        try:
            await self.call("DELETE", kind.path(namespace, name), body)
        except KubeError as error:
            if error.status != 404:
                raise
