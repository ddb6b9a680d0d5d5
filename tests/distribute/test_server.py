"""The update server on a real loopback port: repository files, quarantine upload, reports, metrics."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import httpx
import pytest

from tests.support.live_server import LiveServer
from workbench.distribute.client import fetch_fleet
from workbench.distribute.fleet import FleetStore, FleetThresholds
from workbench.distribute.server import ServerSettings, accepts_gzip
from workbench.distribute.tokens import TokenStore
from workbench.distribute.update_repository import UpdateRepository, publish_bundle
from workbench.quarantine.service import Quarantine
from workbench.samples.mail import EICAR, Attachment, Mail
from workbench.workspace import Workspace

MESSAGE = Mail(sender="billing@example.test", to="victim@example.test", subject="Invoice 4411",
               text="see attached",
               attachments=[Attachment("invoice.com", EICAR)]).build()


@pytest.fixture
def http(live_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_server.url, timeout=10) as client:
        yield client


def auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def message_count(workspace: Workspace) -> int:
    with Quarantine.open(workspace) as q:
        return q.index.count()


# --- repository files -----------------------------------------------------------------------


def test_timestamp_has_etag_and_a_no_change_poll_is_a_304(http: httpx.Client,
                                                          repo: UpdateRepository) -> None:
    first = http.get("/repository/metadata/timestamp.json")
    assert first.status_code == 200
    assert first.content == (repo.metadata_dir / "timestamp.json").read_bytes()
    assert first.headers["cache-control"] == "no-cache"
    etag = first.headers["etag"]
    again = http.get("/repository/metadata/timestamp.json", headers={"if-none-match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    repo.refresh()
    changed = http.get("/repository/metadata/timestamp.json", headers={"if-none-match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag


def test_targets_support_range_and_head(http: httpx.Client, repo: UpdateRepository,
                                        bundles: dict) -> None:
    target = publish_bundle(repo, bundles[2]).target
    url = f"/repository/targets/{target.file_name}"
    data = bundles[2].read_bytes()
    full = http.get(url)
    assert full.content == data and "immutable" in full.headers["cache-control"]
    assert full.headers["content-type"] == "application/gzip"
    part = http.get(url, headers={"range": "bytes=10-19"})
    assert part.status_code == 206 and part.content == data[10:20]
    assert part.headers["content-range"] == f"bytes 10-19/{len(data)}"
    tail = http.get(url, headers={"range": f"bytes={len(data) - 5}-"})
    assert tail.content == data[-5:]
    head = http.head(url)
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["content-length"]) == len(data)
    cached = http.get(url, headers={"if-none-match": full.headers["etag"]})
    assert cached.status_code == 304


@pytest.mark.parametrize("path", [
    "/repository/settings.json", "/repository/metadata/%2e%2e/settings.json",
    "/repository/..%2fkeys/root.pem", "/repository/metadata/", "/repository/metadata/99.root.json",
])
def test_nothing_else_is_served(http: httpx.Client, path: str) -> None:
    response = http.get(path)
    assert response.status_code == 404
    assert b"PRIVATE" not in response.content
    assert response.headers["cache-control"] == "no-cache"     # the next root may appear


# --- quarantine upload -----------------------------------------------------------------------


def test_upload_feeds_the_quarantine(http: httpx.Client, workspace: Workspace, tower_token: str) -> None:
    headers = {**auth(tower_token), "x-workbench-server": "mx03", "x-workbench-reason": "stuck"}
    first = http.post("/v1/quarantine", content=MESSAGE, headers=headers)
    assert first.status_code == 201, first.text
    receipt = first.json()
    assert receipt["stored"] and receipt["new"] and receipt["tower"] == "t01"
    again = http.post("/v1/quarantine", content=MESSAGE, headers=headers)
    assert again.status_code == 200 and not again.json()["new"]
    with Quarantine.open(workspace) as q:
        assert q.index.count() == 1
        sightings = q.index.sightings(receipt["sha256"])
    assert [(s.tower, s.server, s.reason) for s in sightings] == [("t01", "mx03", "stuck")] * 2


def test_upload_of_non_mail_is_kept_and_says_why(http: httpx.Client, workspace: Workspace,
                                                 tower_token: str) -> None:
    response = http.post("/v1/quarantine", content=b"\x00\x01 binary junk" * 10,
                         headers={**auth(tower_token), "x-workbench-server": "mx03"})
    assert response.status_code == 422
    receipt = response.json()
    assert not receipt["stored"] and receipt["failure"] and receipt["stored_as"].startswith("failed/")
    assert (workspace.quarantine / receipt["stored_as"]).is_file()


@pytest.mark.parametrize("headers", [
    {}, {"authorization": "Bearer nope"}, {"authorization": "Basic dDAxOng="},
])
def test_wrong_token_is_401_and_changes_nothing(http: httpx.Client, workspace: Workspace,
                                                headers: dict[str, str]) -> None:
    before = message_count(workspace)
    response = http.post("/v1/quarantine", content=MESSAGE,
                         headers={**headers, "x-workbench-server": "mx03"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    report = http.post("/v1/fleet/report", json={"server": "s01", "state": "ok", "serial": 1},
                       headers=headers)
    assert report.status_code == 401
    assert message_count(workspace) == before
    assert http.get("/v1/fleet").json()["servers"] == []


def test_a_token_speaks_only_for_its_tower(http: httpx.Client, workspace: Workspace,
                                           tower_token: str) -> None:
    response = http.post("/v1/quarantine", content=MESSAGE,
                         headers={**auth(tower_token), "x-workbench-server": "mx03",
                                  "x-workbench-tower": "t02"})
    assert response.status_code == 403
    assert message_count(workspace) == 0


def test_revoked_token_stops_working_without_restart(http: httpx.Client, workspace: Workspace,
                                                     tower_token: str) -> None:
    body = {"server": "s01", "state": "ok", "serial": 1}
    assert http.post("/v1/fleet/report", json=body, headers=auth(tower_token)).status_code == 204
    TokenStore.for_workspace(workspace).revoke("t01")
    assert http.post("/v1/fleet/report", json=body, headers=auth(tower_token)).status_code == 401


def test_bodies_over_the_limit_are_refused(workspace: Workspace, repo: UpdateRepository,
                                           tower_token: str) -> None:
    server = LiveServer(workspace, settings=ServerSettings(max_message_bytes=2000,
                                                           max_json_bytes=300)).start()
    try:
        with httpx.Client(base_url=server.url, timeout=10) as http:
            headers = {**auth(tower_token), "x-workbench-server": "mx03"}
            big = MESSAGE + b"\n" + b"x" * 3000
            assert http.post("/v1/quarantine", content=big, headers=headers).status_code == 413

            def chunks() -> Iterator[bytes]:             # no Content-Length: counted as it comes
                for _ in range(10):
                    yield b"y" * 500

            assert http.post("/v1/quarantine", content=chunks(), headers=headers).status_code == 413
            long_report = {"server": "s01", "state": "failed", "error": "e" * 1000}
            assert http.post("/v1/fleet/report", json=long_report,
                             headers=auth(tower_token)).status_code == 413
            assert message_count(workspace) == 0
            metrics = http.get("/metrics").text
            assert "workbench_request_too_large_total 3.0" in metrics
    finally:
        server.stop()


# --- reports, fleet, metrics ---------------------------------------------------------------------


def test_reports_make_the_fleet_and_the_metrics(http: httpx.Client, repo: UpdateRepository,
                                                bundles: dict, tower_token: str,
                                                workspace: Workspace) -> None:
    publish_bundle(repo, bundles[2])
    other = TokenStore.for_workspace(workspace).add("t02")[1]
    reports = [(tower_token, {"server": "s01", "state": "ok", "serial": 2, "rule_count": 2}),
               (tower_token, {"server": "s02", "state": "ok", "serial": 1}),
               (other, {"server": "s01", "state": "failed", "serial": 1, "target_serial": 2,
                        "error": "refused serial 2: self-test failed"})]
    for token, body in reports:
        assert http.post("/v1/fleet/report", json=body, headers=auth(token)).status_code == 204
    bad = http.post("/v1/fleet/report", json={"server": "s01", "state": "exploded"},
                    headers=auth(tower_token))
    assert bad.status_code == 422
    fleet = http.get("/v1/fleet").json()
    assert fleet["newest_serial"] == 2
    assert fleet["counts"] == {"green": 1, "yellow": 1, "red": 1}
    by_server = {(s["tower"], s["server"]): s for s in fleet["servers"]}
    assert by_server[("t02", "s01")]["reason"].startswith("failed serial 2: refused serial 2: self-test")
    only = http.get("/v1/fleet", params={"tower": "t02", "servers": "false"}).json()
    assert [t["tower"] for t in only["towers"]] == ["t02"] and only["servers"] == []
    history = http.get("/v1/fleet/history", params={"tower": "t02"}).json()
    assert [e["state"] for e in history] == ["failed"]
    metrics = http.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    for line in ('workbench_fleet_servers{health="red"} 1.0',
                 'workbench_fleet_serial_servers{serial="1"} 2.0',
                 'workbench_fleet_serial_servers{serial="2"} 1.0',
                 "workbench_fleet_failed_servers 1.0",
                 'workbench_fleet_reports_total{state="ok"} 2.0',
                 "workbench_repository_newest_serial 2.0"):
        assert line in text, line
    assert http.get("/v1/health").json() == {"status": "ok", "version": "0.1.0", "newest_serial": 2}


def test_the_inventory_puts_servers_that_never_reported_on_the_fleet(
        http: httpx.Client, live_server: LiveServer, repo: UpdateRepository, bundles: dict,
        tower_token: str, workspace: Workspace) -> None:
    publish_bundle(repo, bundles[2])
    for body in ({"server": "s01", "state": "ok", "serial": 2},
                 {"server": "s09", "state": "ok", "serial": 1}):              # s09 is not listed
        assert http.post("/v1/fleet/report", json=body, headers=auth(tower_token)).status_code == 204
    assert "never_reported" not in http.get("/v1/fleet").json()        # no inventory: as before
    # the operators declare the inventory through their own connection, as the CLI does,
    # while the server runs: its next document has it
    with FleetStore.for_workspace(workspace) as store:
        store.expect({"t01": ["s01", "s02", "s03"], "t05": ["mx01"]})
    fleet = http.get("/v1/fleet").json()
    assert fleet["counts"] == {"green": 1, "yellow": 1, "red": 3}
    assert fleet["serials"] == {"2": 1, "1": 1}
    assert (fleet["expected"], fleet["never_reported"], fleet["not_in_inventory"]) == (4, 3, 1)
    by_server = {(s["tower"], s["server"]): s for s in fleet["servers"]}
    assert list(by_server) == [("t01", "s01"), ("t01", "s02"), ("t01", "s03"), ("t01", "s09"),
                               ("t05", "mx01")]
    never = by_server[("t05", "mx01")]
    assert (never["health"], never["reason"], never["state"]) == ("red", "never reported", "never_reported")
    assert never["serial"] is None and never["reported_at"] is None and never["age_seconds"] is None
    assert by_server[("t01", "s09")]["reason"] == "behind: serial 1, newest 2 (not in the inventory)"
    assert by_server[("t01", "s09")]["expected"] is False and by_server[("t01", "s01")]["expected"]
    towers = {t["tower"]: t for t in fleet["towers"]}
    assert towers["t05"] == {"tower": "t05", "health": "red", "servers": 1, "green": 0, "yellow": 0,
                             "red": 1, "serials": {}, "expected": 1, "never_reported": 1}
    assert (towers["t01"]["servers"], towers["t01"]["never_reported"]) == (4, 2)
    only = http.get("/v1/fleet", params={"tower": "t05"}).json()
    assert [s["server"] for s in only["servers"]] == ["mx01"]
    # the client (the board, `fleet --url`) reads the document back
    state = fetch_fleet(live_server.url)
    assert [s.server for s in state.servers if s.never_reported] == ["s02", "s03", "mx01"]
    assert state.towers[1].never_reported == 1
    text = http.get("/metrics").text
    for line in ('workbench_fleet_servers{health="red"} 3.0',
                 "workbench_fleet_expected_servers 4.0",
                 "workbench_fleet_never_reported_servers 3.0",
                 "workbench_fleet_not_in_inventory_servers 1.0",
                 "workbench_fleet_failed_servers 0.0"):
        assert line in text, line
    assert 'serial="none"' not in text                  # a server never heard from runs nothing known
    # forgetting a decommissioned server takes it out of the inventory as well
    with FleetStore.for_workspace(workspace) as store:
        assert store.forget("t05") == ["mx01"]
    fleet = http.get("/v1/fleet").json()
    assert fleet["never_reported"] == 2 and [t["tower"] for t in fleet["towers"]] == ["t01"]
    assert "workbench_fleet_never_reported_servers 2.0" in http.get("/metrics").text


def test_the_fleet_is_gzipped_for_clients_that_take_it(http: httpx.Client,
                                                      tower_token: str) -> None:
    for n in range(40):                 # enough servers for a body worth compressing
        body = {"server": f"mx{n:02d}", "state": "ok", "serial": 1}
        assert http.post("/v1/fleet/report", json=body, headers=auth(tower_token)).status_code == 204
    plain = http.get("/v1/fleet", headers={"accept-encoding": "identity"})
    packed = http.get("/v1/fleet", headers={"accept-encoding": "br, gzip;q=0.8"})
    assert "content-encoding" not in plain.headers
    assert packed.headers["content-encoding"] == "gzip" and packed.headers["vary"] == "accept-encoding"
    assert packed.num_bytes_downloaded * 4 < len(plain.content)         # repetitive JSON
    assert len(packed.json()["servers"]) == len(plain.json()["servers"]) == 40
    history = http.get("/v1/fleet/history", headers={"accept-encoding": "gzip"})
    assert history.headers["content-encoding"] == "gzip" and len(history.json()) == 40
    refused = http.get("/v1/fleet", headers={"accept-encoding": "gzip;q=0"})
    assert "content-encoding" not in refused.headers


@pytest.mark.parametrize(("header", "gzip"), [
    ("gzip", True), ("deflate, gzip", True), ("*", True), ("GZIP;q=0.5", True),
    ("gzip;q=0", False), ("identity", False), ("", False), ("gzip;q=nonsense", False)])
def test_accept_encoding_is_read_as_rfc_9110_says(header: str, gzip: bool) -> None:
    assert accepts_gzip(header) is gzip


def test_ingest_counts_in_metrics(http: httpx.Client, tower_token: str) -> None:
    headers = {**auth(tower_token), "x-workbench-server": "mx03"}
    http.post("/v1/quarantine", content=MESSAGE, headers=headers)
    http.post("/v1/quarantine", content=MESSAGE, headers=headers)
    http.post("/v1/quarantine", content=b"\x00junk" * 20, headers=headers)
    http.post("/v1/quarantine", content=MESSAGE, headers={"x-workbench-server": "mx03"})
    text = http.get("/metrics").text
    for line in ('workbench_ingest_messages_total{result="accepted"} 1.0',
                 'workbench_ingest_messages_total{result="duplicate"} 1.0',
                 'workbench_ingest_messages_total{result="failed"} 1.0',
                 "workbench_auth_failures_total 1.0"):
        assert line in text, line


def test_large_files_stream_with_etag_range_and_head(http: httpx.Client,
                                                     repo: UpdateRepository) -> None:
    """Files over the in-memory limit go through the streaming route, with the same semantics."""
    data = bytes(range(256)) * 6000                      # 1.5 MB
    (repo.targets_dir / "big.tar.gz").write_bytes(data)
    url = "/repository/targets/big.tar.gz"
    full = http.get(url)
    assert full.status_code == 200 and full.content == data
    assert full.headers["etag"] == f'"{hashlib.sha256(data).hexdigest()}"'
    assert http.get(url, headers={"if-none-match": full.headers["etag"]}).status_code == 304
    part = http.get(url, headers={"range": "bytes=1000000-1000009"})
    assert part.status_code == 206 and part.content == data[1000000:1000010]
    head = http.head(url)
    assert head.content == b"" and int(head.headers["content-length"]) == len(data)


def test_the_server_saves_its_thresholds_for_local_readers(workspace: Workspace,
                                                           repo: UpdateRepository) -> None:
    thresholds = FleetThresholds(stale_after=120, silent_after=900)
    server = LiveServer(workspace, settings=ServerSettings(thresholds=thresholds)).start()
    try:
        with FleetStore.for_workspace(workspace) as store:
            assert store.saved_thresholds() == thresholds
            assert store.state(None).thresholds == thresholds
    finally:
        server.stop()
