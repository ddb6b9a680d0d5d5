"""docs/openapi.json is the document the server generates (regenerate it when the API changes)."""

from __future__ import annotations

import json
from pathlib import Path

from workbench.distribute.server import openapi_document

CHECKED_IN = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def test_checked_in_openapi_is_current() -> None:
    current = openapi_document()
    assert json.loads(CHECKED_IN.read_text(encoding="utf-8")) == current, (
        "docs/openapi.json is stale: run `workbench serve --openapi > docs/openapi.json`")


def test_openapi_describes_every_endpoint_and_the_token() -> None:
    document = openapi_document()
    assert set(document["paths"]) == {"/repository/{path}", "/v1/quarantine", "/v1/fleet/report",
                                      "/v1/fleet", "/v1/fleet/history", "/v1/fleet/rules", "/v1/health",
                                      "/metrics"}
    assert document["paths"]["/v1/fleet/report"]["post"]["security"] == [{"HTTPBearer": []}]
    assert document["paths"]["/v1/quarantine"]["post"]["security"] == [{"HTTPBearer": []}]
    assert "security" not in document["paths"]["/v1/fleet"]["get"]
    assert document["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
