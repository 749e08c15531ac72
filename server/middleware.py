"""ASGI middleware: request ids, the bearer token, the body-size limit, latency.

Written as plain ASGI rather than Starlette's ``BaseHTTPMiddleware``, which
costs a task and a memory stream per request on the hot path.
"""

from __future__ import annotations

import hmac
import json
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from pydantic import SecretStr

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


# Paths that need the bearer token when one is configured. Checked here, before
# the body is read, so an anonymous caller learns nothing about its body.
PROTECTED_PATHS = frozenset({"/predict", "/predict/batch", "/explain"})


class RequestContextMiddleware:
    """Give each request an id, check the token, refuse oversized bodies, time it."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: ServerMetrics,
        max_body_bytes: int,
        api_token: SecretStr | None = None,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self._token = api_token.get_secret_value().encode() if api_token else None

    def _authorised(self, headers: dict[bytes, bytes]) -> bool:
        if self._token is None:
            return True
        scheme, _, presented = headers.get(b"authorization", b"").partition(b" ")
        # compare_digest: the time taken must not reveal how much of it matched.
        return scheme.lower() == b"bearer" and hmac.compare_digest(presented, self._token)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = dict(scope.get("headers") or [])
        request_id = headers.get(b"x-request-id", b"").decode("latin-1")[:64] or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        path = scope["path"] if scope["path"] in KNOWN_PATHS else "other"
        refused = False

        async def send_with_id(message: Message) -> None:
            if refused:
                return  # the 413 has been sent; the application's answer is dropped
            if message["type"] == "http.response.start":
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode("latin-1")),
                ]
            await send(message)

        try:
            if scope["path"] in PROTECTED_PATHS and not self._authorised(headers):
                await self._answer(
                    send_with_id, 401, "unauthorized",
                    "a valid 'Authorization: Bearer <token>' header is required", request_id,
                    extra_headers=[(b"www-authenticate", b"Bearer")],
                )  # fmt: skip
                return
            declared = headers.get(b"content-length")
            if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
                await self._refuse(send_with_id, request_id)
                return

            received = 0

            async def limited_receive() -> Message:
                # A chunked body has no declared length: count as it arrives,
                # answer 413 the moment it passes the limit, and tell the
                # application the client went away so it stops reading.
                nonlocal received, refused
                message = await receive()
                if message["type"] == "http.request" and not refused:
                    received += len(message.get("body", b""))
                    if received > self.max_body_bytes:
                        await self._refuse(send_with_id, request_id)
                        refused = True
                        return {"type": "http.disconnect"}
                return message

            await self.app(scope, limited_receive, send_with_id)
        finally:
            self._observe(path, started)

    def _observe(self, path: str, started: float) -> None:
        self.metrics.latency.labels(path=path).observe(time.perf_counter() - started)

    async def _refuse(self, send: Send, request_id: str) -> None:
        self.metrics.errors.labels(kind="payload_too_large").inc()
        await self._answer(
            send, 413, "payload_too_large",
            f"the request body exceeds the limit of {self.max_body_bytes} bytes", request_id,
        )  # fmt: skip

    async def _answer(
        self,
        send: Send,
        status: int,
        error: str,
        message: str,
        request_id: str,
        extra_headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        body = json.dumps(
            {"error": error, "message": message, "request_id": request_id, "details": []}
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    *(extra_headers or []),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
