"""ASGI middleware: request ids, the body-size limit and request latency.

Written as plain ASGI rather than Starlette's ``BaseHTTPMiddleware``, which
costs a task and a memory stream per request on the hot path.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from loanops.server.metrics import ServerMetrics

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Paths whose latency is recorded by name; all others share one label, so a
# scan of random URLs cannot blow up the metric's cardinality.
KNOWN_PATHS = frozenset(
    {"/predict", "/predict/batch", "/explain", "/livez", "/readyz", "/health", "/metrics", "/"}
)


class _BodyTooLargeError(Exception):
    pass


class RequestContextMiddleware:
    """Give each request an id, refuse oversized bodies, time the answer."""

    def __init__(self, app: ASGIApp, *, metrics: ServerMetrics, max_body_bytes: int) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = dict(scope.get("headers") or [])
        request_id = headers.get(b"x-request-id", b"").decode("latin-1")[:64] or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        path = scope["path"] if scope["path"] in KNOWN_PATHS else "other"
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode("latin-1")),
                ]
            await send(message)

        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await self._refuse(send_with_id, request_id)
            self._observe(path, started)
            return

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise _BodyTooLargeError
            return message

        try:
            await self.app(scope, limited_receive, send_with_id)
        except _BodyTooLargeError:
            if not response_started:
                await self._refuse(send_with_id, request_id)
        finally:
            self._observe(path, started)

    def _observe(self, path: str, started: float) -> None:
        self.metrics.latency.labels(path=path).observe(time.perf_counter() - started)

    async def _refuse(self, send: Send, request_id: str) -> None:
        self.metrics.errors.labels(kind="payload_too_large").inc()
        body = json.dumps(
            {
                "error": "payload_too_large",
                "message": f"the request body exceeds the limit of {self.max_body_bytes} bytes",
                "request_id": request_id,
                "details": [],
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
