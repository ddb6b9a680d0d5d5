"""Admission control for ``workbench serve``: body size limits, bytes in flight, slow clients.

A request body is refused before the app buffers it when it is over its size limit
(413), when taking it would put more than the allowed bytes in flight for its tower (429)
or for the whole server (503, both with ``Retry-After``), and when the client stops
sending it for longer than the body timeout (408). Request headers that take longer than
the header timeout are answered 408 by the HTTP protocol itself (``GuardedHttpTools``).
Every refusal and timeout is counted in ``/metrics``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class InFlight:
    """Bytes of request bodies being received, overall and per tower.

    Only the event loop touches it (no lock); ``/metrics`` reads ``total`` from a thread,
    which is one int.
    """

    def __init__(self, total_limit: int, tower_limit: int):
        self.total_limit = total_limit
        self.tower_limit = tower_limit
        self.total = 0
        self.by_tower: dict[str, int] = {}

    def take(self, tower: str, size: int) -> str:
        """Reserve ``size`` bytes; '' if taken, else who is over: "tower" or "server"."""
        held = self.by_tower.get(tower, 0)
        if tower and held + size > self.tower_limit:
            return "tower"
        if self.total + size > self.total_limit:
            return "server"
        self.by_tower[tower] = held + size
        self.total += size
        return ""

    def give_back(self, tower: str, size: int) -> None:
        if size <= 0:
            return
        self.total -= size
        left = self.by_tower.get(tower, 0) - size
        if left > 0:
            self.by_tower[tower] = left
        else:
            self.by_tower.pop(tower, None)


class _Refused(Exception):
    def __init__(self, status: int, detail: str, *, retry_after: int | None = None):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.retry_after = retry_after


class RequestGuard:
    """ASGI middleware over every request that carries a body (not GET/HEAD).

    ``limit_for(path)`` is the size limit, ``tower_for(scope)`` the tower whose token the
    request carries ('' for none: the app answers 401 without reading the body).
    Bytes are reserved when the app first reads the body: the declared Content-Length
    at once, or chunk by chunk for a chunked body; they are given back when the request ends.
    """

    def __init__(self, app: ASGIApp, *, limit_for: Callable[[str], int],
                 tower_for: Callable[[Scope], str], inflight: InFlight, body_timeout: float,
                 retry_after: int, count: Callable[[str], None]):
        self.app = app
        self.limit_for = limit_for
        self.tower_for = tower_for
        self.inflight = inflight
        self.body_timeout = body_timeout
        self.retry_after = retry_after
        self.count = count          # "too_large", "tower_busy", "server_busy", "body_timeout"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared: int | None = None
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = None
        if declared is not None and declared > limit:
            self.count("too_large")
            await _answer(send, 413, f"request body over the {limit} byte limit")
            return
        tower: str | None = None
        reserved = 0
        received = 0
        more_body = True
        started = False

        def reserve(size: int) -> None:
            nonlocal tower, reserved
            if tower is None:
                tower = self.tower_for(scope)
            over = self.inflight.take(tower, size)
            if over == "tower":
                self.count("tower_busy")
                raise _Refused(429, f"tower {tower} has too many bytes in flight; retry later",
                               retry_after=self.retry_after)
            if over == "server":
                self.count("server_busy")
                raise _Refused(503, "the server has too many bytes in flight; retry later",
                               retry_after=self.retry_after)
            reserved += size

        async def guarded_receive() -> Message:
            nonlocal received, more_body
            if not more_body:           # the body is in: no timeout on waiting for a disconnect
                return await receive()
            if reserved == 0 and declared:
                reserve(declared)
            try:
                message = await asyncio.wait_for(receive(), self.body_timeout)
            except TimeoutError:
                self.count("body_timeout")
                raise _Refused(408, f"no part of the request body for {self.body_timeout:g} s") from None
            if message["type"] == "http.request":
                chunk = len(message.get("body", b""))
                received += chunk
                more_body = bool(message.get("more_body", False))
                if received > limit:
                    self.count("too_large")
                    raise _Refused(413, f"request body over the {limit} byte limit")
                if received > reserved:
                    reserve(received - reserved)
            else:
                more_body = False
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, guarded_receive, tracking_send)
        except _Refused as refused:
            if not started:
                await _answer(send, refused.status, refused.detail, retry_after=refused.retry_after)
        finally:
            self.inflight.give_back(tower or "", reserved)


async def _answer(send: Send, status: int, detail: str, *, retry_after: int | None = None) -> None:
    """A JSON error that closes the connection: the rest of the body is not wanted."""
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"connection", b"close")]
    if retry_after is not None:
        headers.append((b"retry-after", str(retry_after).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


_HEADERS_TIMEOUT_RESPONSE = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
                             b"content-length: 25\r\nconnection: close\r\n\r\nrequest headers too slow\n")


def guarded_protocol(header_timeout: float, on_timeout: Callable[[], None]) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol with a deadline for a request's headers.

    uvicorn cancels its keep-alive timer on every byte received, so a client sending one
    header byte every few seconds would hold a connection forever. Here the headers of
    each request must be complete within ``header_timeout`` of the connection opening (or
    of the request's first byte, on a kept-alive connection), else 408 and close.
    """

    class GuardedHttpTools(HttpToolsProtocol):
        _header_deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._arm()

        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            if self._header_deadline is None:
                self._header_deadline = self.loop.call_later(header_timeout, self._too_slow)

        def _disarm(self) -> None:
            if self._header_deadline is not None:
                self._header_deadline.cancel()
                self._header_deadline = None

        def _too_slow(self) -> None:
            self._header_deadline = None
            if self.transport.is_closing():
                return
            on_timeout()
            self.transport.write(_HEADERS_TIMEOUT_RESPONSE)
            self.transport.close()

    return GuardedHttpTools
