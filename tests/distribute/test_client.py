"""The client functions other parts call (the TUI's fleet board, tower scripts)."""

from __future__ import annotations

import pytest

from tests.support.live_server import LiveServer, free_port
from workbench.distribute.client import (
    ClientError,
    fetch_fleet,
    fetch_history,
    send_message,
    send_report,
    server_url_from_repository,
)
from workbench.distribute.fleet import FleetReport, Health
from workbench.samples.mail import Mail


def test_report_then_read_the_fleet_back(live_server: LiveServer, tower_token: str) -> None:
    send_report(live_server.url, tower_token, FleetReport(server="s01", state="ok", serial=None))
    send_report(live_server.url, tower_token,
                FleetReport(server="s02", state="failed", error="boom", target_serial=3))
    fleet = fetch_fleet(live_server.url)
    assert [(s.server, s.health) for s in fleet.servers] == [("s01", Health.YELLOW),
                                                            ("s02", Health.RED)]
    assert fleet.towers[0].health is Health.RED
    assert fetch_fleet(live_server.url, servers=False).servers == []
    history = fetch_history(live_server.url, server="s02")
    assert [(e.tower, e.state, e.error) for e in history] == [("t01", "failed", "boom")]


def test_errors_carry_the_status(live_server: LiveServer, tower_token: str) -> None:
    with pytest.raises(ClientError) as refused:
        send_report(live_server.url, "wbt_nope", FleetReport(server="s01", state="ok"))
    assert refused.value.status == 401 and "wrong tower token" in str(refused.value)
    with pytest.raises(ClientError) as down:
        fetch_fleet(f"http://127.0.0.1:{free_port()}", timeout=2)
    assert down.value.status == 0 and "cannot reach" in str(down.value)
    receipt = send_message(live_server.url, tower_token,
                           Mail(sender="a@example.test", to="b@example.test", subject="hi",
                                text="x").build(), server="mx01", reason="stuck")
    assert receipt["stored"] and receipt["new"]


@pytest.mark.parametrize(("url", "base"), [
    ("http://h:8470/repository", "http://h:8470"), ("http://h/repository/", "http://h"),
    ("https://cdn.example/updates", "https://cdn.example/updates"),
])
def test_server_url_from_repository(url: str, base: str) -> None:
    assert server_url_from_repository(url) == base
