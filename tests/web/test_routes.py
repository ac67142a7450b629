"""The route table is the single source: every route answers, is listed and documented as the
table says, is labelled by its pattern, and stays behind the guard."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from coordd.core.attention import Attention
from coordd.core.attentionview import attention_answer
from coordd.core.vocabulary import CATEGORIES
from coordd.web.openapi import openapi_document
from coordd.web.routes import HTTP_METHODS, INDEX, ROUTES, Route, match, route_template
from tests.web.helpers import GOOD, handshake, make_app, request

#: What each `:id` of a pattern stands for in a request.
SAMPLE_ID = "ws_1"
#: Routes that describe the API rather than being part of it: not in OpenAPI.
UNDOCUMENTED = {"/", "/api", "/openapi.json"}


def sample(route: Route) -> str:
    return "/".join(SAMPLE_ID if s.startswith(":") else s for s in route.pattern.split("/"))


def app() -> Any:
    tracker = Attention()
    return make_app(metrics=lambda: b"coordd_up 1\n",
                    plugins=lambda: [{"name": "keywords", "enabled": True}],
                    attention=lambda params, now: attention_answer(tracker, params, now))


HTTP_ROUTES = [r for r in ROUTES if r.handler is not None]


@pytest.mark.parametrize("route", HTTP_ROUTES, ids=lambda r: r.pattern)
async def test_every_route_answers_its_methods_and_refuses_the_others(route: Route) -> None:
    for method in sorted(HTTP_METHODS - {"OPTIONS"}):
        r = await request(app(), method, sample(route), body=GOOD if route.writes else b"")
        if method in route.methods:
            assert r.status_code == 200, (method, route.pattern, await r.get_data())
            want = (route.content_type or b"application/json").decode()
            assert r.headers["Content-Type"] == want
        else:
            assert r.status_code == 405, (method, route.pattern)


async def test_the_websocket_route_is_not_an_http_one() -> None:
    r = await request(app(), "GET", "/ws")
    assert r.status_code == 404


def test_matching_and_labels_come_from_the_table() -> None:
    for route in ROUTES:
        assert match(sample(route)) == (route, (SAMPLE_ID,) * route.pattern.count(":"))
        assert route_template(sample(route)) == route.label == route.pattern
    # Exact paths win over a pattern: `search` is never an id.
    searched, _ = match("/api/work-sessions/search")
    assert searched is not None and searched.pattern == "/api/work-sessions/search"
    for path in ("/api/work-sessions/", "/api/work-sessions/a/b", "/api/events/", "/nope",
                 "/api/work-sessions//category"):
        assert match(path) == (None, ()) and route_template(path) == "other"


def test_the_index_lists_the_table() -> None:
    endpoints = orjson.loads(INDEX)["endpoints"]
    assert endpoints == [f"{r.methods[0]} {r.pattern}" for r in ROUTES if r.listed]
    assert "WS /ws" in endpoints and "PATCH /api/work-sessions/:id/category" in endpoints


def test_openapi_documents_the_table() -> None:
    paths = openapi_document(ROUTES, CATEGORIES)["paths"]
    documented = [r for r in ROUTES if r.pattern not in UNDOCUMENTED]
    assert all(r.doc is not None and r.summary for r in documented)
    assert all(r.doc is None for r in ROUTES if r.pattern in UNDOCUMENTED)
    assert len(paths) == len(documented)
    for route in documented:
        path = route.pattern.replace(":id", "{id}")
        verb = "get" if route.methods[0] == "WS" else route.methods[0].lower()
        assert paths[path][verb]["summary"] == route.summary


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.pattern)
async def test_the_guard_covers_every_route(route: Route) -> None:
    method = "WS" if route.handler is None else route.methods[0]
    if method == "WS":
        answer = await handshake(app(), sample(route), host="evil.example")
        assert answer[0]["type"] == "websocket.http.response.start"
        assert answer[0]["status"] == 421
        return
    r = await request(app(), method, sample(route), body=GOOD, server="127.0.0.1",
                      headers={"Host": "evil.example"})
    assert r.status_code == 421
    assert "DNS rebinding" in json.loads(await r.get_data())["error"]


async def test_the_websocket_route_reaches_its_handler() -> None:
    served: list[str] = []

    async def serve(ws: Any) -> None:
        served.append(ws.args.get("since"))
        await ws.accept()
        await ws.close(1000)

    answer = await handshake(make_app(websocket=serve), "/ws", query=b"since=3")
    assert [m["type"] for m in answer] == ["websocket.accept", "websocket.close"]
    assert served == ["3"]
