"""Talking to ``workbench serve`` from elsewhere: the fleet board, tower reports, quarantine uploads."""

from __future__ import annotations

import dataclasses
from typing import Any

import httpx

import workbench
from workbench.distribute.fleet import FleetEvent, FleetReport, FleetState, parse_time
from workbench.distribute.telemetry import FleetRules
from workbench.errors import Kind, WorkbenchError

USER_AGENT = f"workbench/{workbench.__version__}"
DEFAULT_TIMEOUT = 10.0


class ClientError(WorkbenchError):
    """The server could not be reached (``status`` 0) or refused the request."""

    kind = Kind.REMOTE

    def __init__(self, message: str, status: int = 0):
        super().__init__(message)
        self.status = status


def server_url_from_repository(repository_url: str) -> str:
    """``http://h:p/repository`` -> ``http://h:p`` (the API lives beside the repository)."""
    url = repository_url.rstrip("/")
    return url[: -len("/repository")] if url.endswith("/repository") else url


def _request(method: str, url: str, *, timeout: float, **kwargs: Any) -> httpx.Response:
    headers = {"user-agent": USER_AGENT, **kwargs.pop("headers", {})}
    try:
        response = httpx.request(method, url, timeout=timeout, headers=headers, **kwargs)
    except httpx.HTTPError as exc:
        raise ClientError(f"cannot reach {url}: {exc}") from None
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        raise ClientError(f"{method} {url}: HTTP {response.status_code}: {detail}",
                          response.status_code)
    return response


def fetch_fleet(base_url: str, *, tower: str | None = None, servers: bool = True,
                timeout: float = DEFAULT_TIMEOUT) -> FleetState:
    """``GET /v1/fleet`` as a ``FleetState`` (what the TUI's fleet board draws)."""
    params: dict[str, Any] = {"servers": str(servers).lower()}
    if tower:
        params["tower"] = tower
    response = _request("GET", f"{base_url.rstrip('/')}/v1/fleet", params=params, timeout=timeout)
    return FleetState.from_data(response.json())


def fetch_history(base_url: str, *, tower: str | None = None, server: str | None = None,
                  limit: int = 100, timeout: float = DEFAULT_TIMEOUT) -> list[FleetEvent]:
    params: dict[str, Any] = {"limit": limit}
    if tower:
        params["tower"] = tower
    if server:
        params["server"] = server
    response = _request("GET", f"{base_url.rstrip('/')}/v1/fleet/history", params=params,
                        timeout=timeout)
    return [FleetEvent(**{**e, "at": parse_time(e["at"])}) for e in response.json()]


def fetch_rules(base_url: str, *, hours: int = 24, rule: str | None = None,
                timeout: float = DEFAULT_TIMEOUT) -> FleetRules:
    """``GET /v1/fleet/rules`` as a ``FleetRules`` (per-rule hits over time)."""
    params: dict[str, Any] = {"hours": hours}
    if rule:
        params["rule"] = rule
    response = _request("GET", f"{base_url.rstrip('/')}/v1/fleet/rules", params=params,
                        timeout=timeout)
    return FleetRules.from_data(response.json())


def send_report(base_url: str, token: str, report: FleetReport, *,
                timeout: float = DEFAULT_TIMEOUT) -> None:
    _request("POST", f"{base_url.rstrip('/')}/v1/fleet/report",
             json=dataclasses.asdict(report), timeout=timeout,
             headers={"authorization": f"Bearer {token}"})


def send_message(base_url: str, token: str, data: bytes, *, server: str, reason: str = "",
                 tower: str | None = None, timeout: float = 60.0) -> dict[str, Any]:
    """``POST /v1/quarantine``: one raw message; returns the receipt (also for 422)."""
    headers = {"authorization": f"Bearer {token}", "content-type": "message/rfc822",
               "x-workbench-server": server, "x-workbench-reason": reason}
    if tower:
        headers["x-workbench-tower"] = tower
    url = f"{base_url.rstrip('/')}/v1/quarantine"
    try:
        response = httpx.post(url, content=data, headers={"user-agent": USER_AGENT, **headers},
                              timeout=timeout)
    except httpx.HTTPError as exc:
        raise ClientError(f"cannot reach {url}: {exc}") from None
    if response.status_code in (200, 201, 422):
        receipt: dict[str, Any] = response.json()
        return receipt
    try:
        detail = response.json().get("detail", response.text)
    except ValueError:
        detail = response.text
    raise ClientError(f"POST {url}: HTTP {response.status_code}: {detail}", response.status_code)
