"""The fleet report's fast path: a good report is stored without the framework; every other
request reaches the documented route with its body intact (tests/distribute/test_server.py
checks the answers end to end)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from workbench.distribute.server import ReportFastPath, make_app
from workbench.distribute.tokens import TokenStore
from workbench.workspace import Workspace


class Downstream:
    """Stands for the FastAPI app behind the fast path: records what reached it."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message["body"]
            if not message["more_body"]:
                break
        self.bodies.append(body)
        await send({"type": "http.response.start", "status": 599, "headers": []})
        await send({"type": "http.response.body", "body": b""})


def post(path: ReportFastPath, token: str, body: bytes, *, chunks: int = 1) -> list[dict[str, Any]]:
    headers = [(b"content-type", b"application/json")]
    if token:
        headers.append((b"authorization", f"Bearer {token}".encode()))
    scope = {"type": "http", "method": "POST", "path": "/v1/fleet/report", "headers": headers}
    size = -(-len(body) // chunks)
    parts = [body[i:i + size] for i in range(0, len(body), size)] or [b""]
    incoming = [{"type": "http.request", "body": p, "more_body": n < len(parts) - 1}
                for n, p in enumerate(parts)]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(path(scope, receive, send))
    return sent


def test_a_good_report_is_stored_without_the_route_and_the_rest_reach_it(workspace: Workspace) -> None:
    token = TokenStore.for_workspace(workspace).add("t01")[1]
    app = make_app(workspace)
    state = app.state.workbench
    downstream = Downstream()
    path = ReportFastPath(downstream, state, lambda scope: next(
        (state.tokens.verify(v.decode().partition(" ")[2]) or "" for k, v in scope["headers"]
         if k == b"authorization"), ""))
    try:
        good = json.dumps({"server": "mx01", "state": "ok", "serial": 3}).encode()
        sent = post(path, token, good, chunks=3)
        assert sent[0]["status"] == 204 and downstream.bodies == []
        assert [(s.tower, s.server, s.serial) for s in state.fleet_state().servers] == [("t01", "mx01", 3)]
        # not a report, no token, a wrong token: the route answers, with the body as sent
        for token_used, body in ((token, b'{"server": "mx01", "state": "exploded"}'),
                                 ("", good), ("wbt_nope_nope", good)):
            assert post(path, token_used, body, chunks=2)[0]["status"] == 599
            assert downstream.bodies[-1] == body
        assert len(state.fleet_state().servers) == 1
    finally:
        state.close()
