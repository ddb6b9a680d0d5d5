"""The server under hostile clients and a locked store, on a real loopback port.

A second process holds fleet.sqlite's write lock; raw sockets send slow headers, stalled
bodies and more bytes than the server may hold. The repository polls and /v1/health keep
being answered, and every refusal is a clear status (401, 408, 413, 422, 429, 503), never
a 500, counted in /metrics.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.live_server import LiveServer
from workbench.distribute.server import ServerSettings
from workbench.distribute.tokens import TokenStore
from workbench.distribute.update_repository import UpdateRepository
from workbench.workspace import Workspace

pytestmark = pytest.mark.slow      # real processes, servers or the whole app: ./dev test --fast skips it

HOLD_LOCK = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN IMMEDIATE")
db.execute("INSERT INTO settings (key, value) VALUES ('held-by-test', 1) "
           "ON CONFLICT (key) DO UPDATE SET value = value + 1")
print("locked", flush=True)
sys.stdin.read()          # until the test closes our stdin
db.execute("ROLLBACK")
"""


def auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


@pytest.fixture
def lock_holder(workspace: Workspace, live_server: LiveServer) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the write lock on the fleet store (until the test lets go)."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD_LOCK,
                             str(workspace.state / "fleet.sqlite")],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    yield proc
    if proc.poll() is None:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=10)


def metric(text: str, name: str) -> float:
    m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def wait_for(condition, what: str, limit: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    """Poll until ``condition()`` holds; a hang is a failure, not a wait forever."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.02)


# --- item 3: a locked fleet.sqlite ------------------------------------------------------------------


def test_polls_and_health_are_answered_while_a_report_waits_for_a_locked_store(
        live_server: LiveServer, repo: UpdateRepository, tower_token: str,
        lock_holder: subprocess.Popen[str]) -> None:
    outcome: dict[str, int] = {}

    def report() -> None:
        with httpx.Client(base_url=live_server.url, timeout=60) as client:
            outcome["status"] = client.post("/v1/fleet/report", headers=auth(tower_token),
                                            json={"server": "s01", "state": "ok", "serial": 1}
                                            ).status_code

    state = live_server.app.state.workbench
    reporter = threading.Thread(target=report)
    reporter.start()
    try:
        wait_for(lambda: state.fleet_writer.pending == 1, "the report reached the locked store")
        # The report is stuck behind the other process's lock; everything else answers.
        with httpx.Client(base_url=live_server.url, timeout=10) as client:
            first = client.get("/repository/metadata/timestamp.json")
            assert first.status_code == 200
            again = client.get("/repository/metadata/timestamp.json",
                               headers={"if-none-match": first.headers["etag"]})
            assert again.status_code == 304
            assert client.get("/v1/health").json()["status"] == "ok"
            assert client.get("/v1/fleet").status_code == 200
            assert client.get("/v1/fleet/history").status_code == 200
            assert "workbench_fleet_reports" in client.get("/metrics").text
        assert reporter.is_alive() and "status" not in outcome
    finally:
        assert lock_holder.stdin is not None
        lock_holder.stdin.close()
        lock_holder.wait(timeout=10)
        reporter.join(timeout=60)
    assert outcome["status"] == 204


def test_a_store_locked_past_the_busy_timeout_is_503_with_retry_after(
        workspace: Workspace, repo: UpdateRepository, tower_token: str) -> None:
    server = LiveServer(workspace, settings=ServerSettings(fleet_busy_timeout=0.3)).start()
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(workspace.state / "fleet.sqlite")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with httpx.Client(base_url=server.url, timeout=30) as client:
            body = {"server": "s01", "state": "ok", "serial": 1}
            busy = client.post("/v1/fleet/report", headers=auth(tower_token), json=body)
            assert busy.status_code == 503 and int(busy.headers["retry-after"]) > 0
            assert metric(client.get("/metrics").text,
                          'workbench_requests_refused_total{reason="fleet_busy"}') == 1
            assert holder.stdin is not None
            holder.stdin.close()
            holder.wait(timeout=10)
            assert client.post("/v1/fleet/report", headers=auth(tower_token),
                               json=body).status_code == 204
    finally:
        if holder.poll() is None:
            holder.kill()
        server.stop()


def test_the_server_starts_while_another_process_holds_the_store(
        workspace: Workspace, repo: UpdateRepository, live_server: LiveServer,
        lock_holder: subprocess.Popen[str]) -> None:
    second = LiveServer(workspace, settings=ServerSettings(fleet_busy_timeout=0.3)).start()
    try:
        with httpx.Client(base_url=second.url, timeout=10) as client:
            assert client.get("/v1/health").status_code == 200
            assert client.get("/repository/metadata/timestamp.json").status_code == 200
    finally:
        second.stop()


# --- item 5: the report endpoint's input ------------------------------------------------------------


HOSTILE_BODIES = [
    b'{"server": "s01", "state": "ok", "serial": 9223372036854775808}',
    b'{"server": "s01", "state": "ok", "rule_count": 18446744073709551616}',
    b'{"server": "s01", "state": "ok", "target_serial": 99999999999999999999999999999}',
    b'{"server": "s01", "state": "ok", "serial": 1.5}',
    b'{"server": "s01", "state": "ok", "serial": -1}',
    b'{"server": "s01", "state": "ok", "error": "\\ud800 lone surrogate"}',
    b'{"server": "../../etc", "state": "ok"}',
    b'{"server": "s01", "state": "pwned-ECHO-MARKER"}',
    b'not json ECHO-MARKER',
    b'\xff\xfe\x00garbage',
    b'["s01", "ok"]',
    b'[' * 20000 + b']' * 20000,
    b'',
]


@pytest.mark.parametrize("body", HOSTILE_BODIES, ids=range(len(HOSTILE_BODIES)))
def test_report_input_is_auth_first_then_422_never_500(live_server: LiveServer, tower_token: str,
                                                       body: bytes) -> None:
    headers = {"content-type": "application/json"}
    with httpx.Client(base_url=live_server.url, timeout=10) as client:
        anonymous = client.post("/v1/fleet/report", content=body, headers=headers)
        assert anonymous.status_code == 401
        assert b"ECHO-MARKER" not in anonymous.content and b"etc" not in anonymous.content
        wrong = client.post("/v1/fleet/report", content=body,
                            headers={**headers, **auth("wbt_x_" + "0" * 40)})
        assert wrong.status_code == 401
        typed = client.post("/v1/fleet/report", content=body, headers={**headers, **auth(tower_token)})
        assert typed.status_code in (413, 422), typed.text
        assert b"ECHO-MARKER" not in typed.content and b"9223372036854775808" not in typed.content
        assert client.get("/v1/health").status_code == 200


def test_a_chunked_report_over_the_limit_is_413_and_counted(live_server: LiveServer,
                                                            tower_token: str) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"server": "s01", "state": "failed", "error": "'
        for _ in range(80):
            yield b"e" * 1024
        yield b'"}'

    with httpx.Client(base_url=live_server.url, timeout=10) as client:
        refused = client.post("/v1/fleet/report", content=chunks(),
                              headers={**auth(tower_token), "content-type": "application/json"})
        assert refused.status_code == 413
        assert metric(client.get("/metrics").text, "workbench_request_too_large_total") == 1


# --- item 4: bytes in flight and slow clients, with raw sockets --------------------------------------


def raw(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=15)
    return sock


def read_response(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (bounded by the socket timeout)."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def upload_head(token: str, length: int) -> bytes:
    return (f"POST /v1/quarantine HTTP/1.1\r\nhost: test\r\nauthorization: Bearer {token}\r\n"
            f"x-workbench-server: mx01\r\ncontent-type: message/rfc822\r\n"
            f"content-length: {length}\r\n\r\n").encode()


def test_slow_headers_and_stalled_bodies_are_timed_out(workspace: Workspace, repo: UpdateRepository,
                                                       tower_token: str) -> None:
    server = LiveServer(workspace, settings=ServerSettings(header_timeout=0.5,
                                                           body_timeout=0.5)).start()
    try:
        trickling = []
        for _ in range(20):                     # slowloris: headers never finish
            sock = raw(server.port)
            sock.sendall(b"GET /v1/health HTTP/1.1\r\nhost: test\r\nx-slow: ")
            trickling.append(sock)
        idle = raw(server.port)                 # connects and says nothing
        stalled = raw(server.port)              # a body that stops coming
        stalled.sendall(upload_head(tower_token, 5000) + b"From: a@example.test\r\n")
        for sock in trickling:
            answer = read_response(sock)
            assert answer.startswith(b"HTTP/1.1 408"), answer
            sock.close()
        assert read_response(idle).startswith(b"HTTP/1.1 408")
        answer = read_response(stalled)
        assert answer.startswith(b"HTTP/1.1 408") and b"request body" in answer
        idle.close()
        stalled.close()
        with httpx.Client(base_url=server.url, timeout=10) as client:
            metrics = client.get("/metrics").text
            assert metric(metrics, 'workbench_request_timeouts_total{phase="headers"}') == 21
            assert metric(metrics, 'workbench_request_timeouts_total{phase="body"}') == 1
            assert metric(metrics, "workbench_inflight_request_bytes") == 0
            assert client.get("/v1/health").status_code == 200
    finally:
        server.stop()


def test_bytes_in_flight_are_capped_per_tower_and_overall(workspace: Workspace,
                                                          repo: UpdateRepository,
                                                          tower_token: str) -> None:
    other_token = TokenStore.for_workspace(workspace).add("t02")[1]
    settings = ServerSettings(max_message_bytes=4000, max_inflight_bytes=5000,
                              max_inflight_bytes_per_tower=4000, body_timeout=30)
    server = LiveServer(workspace, settings=settings).start()
    held: list[socket.socket] = []
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            def inflight() -> float:
                return metric(client.get("/metrics").text, "workbench_inflight_request_bytes")

            first = raw(server.port)              # tower t01: 3,000 bytes declared, held open
            first.sendall(upload_head(tower_token, 3000) + b"From: a@example.test\r\n")
            held.append(first)
            wait_for(lambda: inflight() == 3000, "the first upload is in flight")

            same_tower = client.post("/v1/quarantine", content=b"x" * 1500,
                                     headers={**auth(tower_token), "x-workbench-server": "mx02"})
            assert same_tower.status_code == 429 and int(same_tower.headers["retry-after"]) > 0
            other_tower = client.post("/v1/quarantine", content=b"x" * 2500,
                                      headers={**auth(other_token), "x-workbench-server": "mx03"})
            assert other_tower.status_code == 503 and int(other_tower.headers["retry-after"]) > 0
            assert client.get("/repository/metadata/timestamp.json").status_code == 200
            metrics = client.get("/metrics").text
            assert metric(metrics, 'workbench_requests_refused_total{reason="tower_busy"}') == 1
            assert metric(metrics, 'workbench_requests_refused_total{reason="server_busy"}') == 1

            first.close()
            held.clear()
            wait_for(lambda: inflight() == 0, "the dropped upload's bytes are given back")
            retried = client.post("/v1/quarantine", content=_mail(),
                                  headers={**auth(other_token), "x-workbench-server": "mx03"})
            assert retried.status_code == 201, retried.text
    finally:
        for sock in held:
            sock.close()
        server.stop()


def _mail() -> bytes:
    return (b"From: a@example.test\r\nTo: b@example.test\r\nSubject: retry\r\n"
            b"Message-ID: <retry@example.test>\r\n\r\nhello\r\n")


def test_openapi_report_body_is_documented() -> None:
    document = json.loads((Path(__file__).resolve().parents[2] / "docs" / "openapi.json").read_text())
    body = document["paths"]["/v1/fleet/report"]["post"]["requestBody"]
    assert body["required"] and "serial" in body["content"]["application/json"]["schema"]["properties"]
