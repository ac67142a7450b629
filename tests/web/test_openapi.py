"""The OpenAPI document describes every route the daemon serves, with valid references."""

from __future__ import annotations

import json
from typing import Any

from coordd.core.vocabulary import CATEGORIES
from coordd.web.openapi import openapi_document
from coordd.web.routes import ROUTES


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "$ref"] + [r for v in node.values()
                                                              for r in refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in refs(v)]
    return []


def test_document_is_consistent() -> None:
    doc = openapi_document(ROUTES, (*CATEGORIES, "security"))
    json.dumps(doc)  # serialisable
    assert doc["openapi"].startswith("3.1")
    for path in ("/api/health", "/api/events", "/api/work-sessions", "/api/work-sessions/{id}",
                 "/api/work-sessions/{id}/category", "/api/events/search",
                 "/api/work-sessions/search", "/api/stats", "/-/plugins", "/metrics", "/ws"):
        assert path in doc["paths"], path
    schemas = doc["components"]["schemas"]
    for ref in refs(doc):
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in schemas
    events_params = {p["name"] for p in doc["paths"]["/api/events"]["get"]["parameters"]}
    assert {"limit", "since", "until", "role", "type", "viewCategory", "cursor"} <= events_params
    patch = doc["paths"]["/api/work-sessions/{id}/category"]["patch"]
    enum = patch["requestBody"]["content"]["application/json"]["schema"]["properties"][
        "collabCategory"]["enum"]
    assert "security" in enum  # plugin-introduced categories are documented
    session = schemas["WorkSession"]["properties"]["collabCategory"]
    assert session["enum"] == [*CATEGORIES, "security"]
