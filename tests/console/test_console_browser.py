"""The console in headless chromium against the real daemon on a temporary log: it loads,
shows appended events in the list and the open timeline without a reload, filters and
searches, edits a category that stays, rides out a daemon restart, and lists attention."""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from tests.daemon import Daemon

pytestmark = pytest.mark.slow

expect: Any = None


@pytest.fixture(autouse=True)
def _expect(browser: Any) -> None:
    global expect
    from playwright.sync_api import expect as pw_expect

    pw_expect.set_options(timeout=15000)
    expect = pw_expect


def now_ms() -> int:
    return int(time.time() * 1000)


def ev(ws: str, frm: str, to: str, message: str, *, kind: str = "a2a.send",
       ts: int | None = None, **data: Any) -> dict[str, Any]:
    """An a2a event of work session `ws` from `frm` to `to`."""
    return {"type": kind, "agentId": frm, "ts": now_ms() if ts is None else ts,
            "data": {"workSessionId": ws, "fromAgent": frm, "toAgent": to, "message": message,
                     "conversationId": f"c-{ws}-{min(frm, to)}-{max(frm, to)}", **data}}


def start(tmp_path: Path, *lines: dict[str, Any], config: str = "", port: int = 0) -> Daemon:
    args: list[str] = []
    if config:
        path = tmp_path / "coordd.toml"
        path.write_text(config)
        args += ["--config", str(path)]
    if port:
        args += ["--port", str(port)]
    d = Daemon(tmp_path, *args)
    d.append(*lines)
    d.start()
    d.wait_events(len(lines))
    return d


def rows(page: Any) -> Any:
    return page.locator("#session-list a.row")


def test_the_list_and_the_open_timeline_follow_the_log(tmp_path: Path, new_page: Any) -> None:
    d = start(tmp_path, ev("ws_a", "ruda", "grim", "첫 번째 메시지 hello"),
              ev("ws_b", "eden", "miri", "second session"))
    try:
        p = new_page()
        page = p.page
        page.goto(d.url + "/")  # a browser at / is sent to /ui/
        assert page.url.endswith("/ui/")
        expect(page.locator("#conn")).to_have_attribute("data-state", "live")
        expect(rows(page)).to_have_count(2)
        # A new session appears at the top, without a reload.
        d.append(ev("ws_c", "nuri", "seum", "a new session appears"))
        expect(rows(page)).to_have_count(3)
        expect(rows(page).first).to_have_attribute("data-id", "ws_c")
        # A changed session moves back to the top.
        d.append(ev("ws_a", "grim", "ruda", "답장입니다", kind="a2a.response", turn=1))
        expect(rows(page).first).to_have_attribute("data-id", "ws_a")
        # Keyboard: the first row is selected; Enter opens it.
        page.locator("#session-list").focus()
        page.keyboard.press("Enter")
        expect(page).to_have_url(re.compile(r"#/session/ws_a$"))
        timeline = page.locator("#timeline > li")
        expect(timeline).to_have_count(2)
        expect(page.locator("#timeline")).to_contain_text("첫 번째 메시지")
        expect(page.locator("#timeline li.reply")).to_contain_text("replied after")
        # An event appended to the log shows in the open timeline, without a reload.
        d.append(ev("ws_a", "ruda", "grim", "live 라이브 event in the timeline"))
        expect(timeline).to_have_count(3)
        expect(timeline.last).to_contain_text("live 라이브 event")
        d.append({"type": "task.completed", "agentId": "ruda", "ts": now_ms(),
                  "data": {"workSessionId": "ws_a", "taskId": "task_1"}})
        expect(timeline.last).to_contain_text("task.completed")
        assert p.problems() == []
        p.shot("timeline")
        # Esc goes back to the list.
        page.locator("body").press("Escape")
        expect(rows(page)).to_have_count(3)
    finally:
        d.kill()


def test_filters_and_search_narrow_the_list(tmp_path: Path, new_page: Any) -> None:
    old = now_ms() - 3 * 86_400_000  # three days ago: ARCHIVED
    d = start(tmp_path, ev("ws_old", "dajim", "ieum", "an old one", ts=old),
              *[ev(f"ws_alpha{i}", "alpha", "worker-quick", f"alpha work {i}") for i in range(3)],
              *[ev(f"ws_beta{i}", "beta", "worker-deep", f"beta work {i}") for i in range(2)])
    try:
        p = new_page()
        page = p.page
        page.goto(d.url + "/ui/")
        expect(rows(page)).to_have_count(6)
        page.select_option("#f-status", "ARCHIVED")
        expect(rows(page)).to_have_count(1)
        expect(rows(page).first).to_have_attribute("data-id", "ws_old")
        assert "status=ARCHIVED" in page.url
        page.select_option("#f-status", "")
        expect(rows(page)).to_have_count(6)
        expect(page.locator("#f-agent option[value=beta]")).to_have_count(1)
        page.select_option("#f-agent", "beta")
        expect(rows(page)).to_have_count(2)
        page.select_option("#f-agent", "")
        page.keyboard.press("/")
        page.keyboard.type("alpha")
        expect(rows(page)).to_have_count(3)
        for i in range(3):
            expect(rows(page).nth(i)).to_have_attribute("data-id", re.compile("ws_alpha"))
        # The search survives a reload (it is in the address).
        page.reload()
        expect(page.locator("#q")).to_have_value("alpha")
        expect(rows(page)).to_have_count(3)
        assert p.problems() == []
    finally:
        d.kill()


def test_a_category_edit_persists_and_asks_for_the_token(tmp_path: Path, new_page: Any) -> None:
    d = start(tmp_path, ev("ws_cat", "ruda", "grim", "plain words"),
              config='[server]\nwrite_token = "s3cret"\n')
    try:
        p = new_page()
        page = p.page
        page.goto(d.url + "/ui/#/session/ws_cat")
        expect(page.locator("#category-select option[value=legal_compliance]")).to_have_count(1)
        page.select_option("#category-select", "legal_compliance")
        page.click("#category-save")
        # The daemon wants its token: the console asks for it.
        expect(page.locator("#token")).to_be_visible()
        expect(page.locator("#category-message")).to_contain_text("write token")
        page.fill("#token", "s3cret")
        page.click("#category-save")
        expect(page.locator("#category-message")).to_have_text("saved")
        expect(page.locator("#session-category")).to_have_text("legal compliance")
        page.reload()
        expect(page.locator("#session-category")).to_have_text("legal compliance")
        session = d.get("/api/work-sessions/ws_cat").json()["session"]
        assert (session["collabCategory"], session["categorySource"]) == (
            "legal_compliance", "manual_override")
    finally:
        d.kill()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_indicator_shows_a_restart_and_the_page_recovers(tmp_path: Path,
                                                            new_page: Any) -> None:
    port = free_port()
    d = start(tmp_path, ev("ws_1", "ruda", "grim", "before the restart"), port=port)
    try:
        p = new_page()
        page = p.page
        page.goto(d.url + "/ui/")
        conn = page.locator("#conn")
        expect(conn).to_have_attribute("data-state", "live")
        expect(rows(page)).to_have_count(1)
        d.stop()
        expect(conn).to_have_attribute("data-state", "reconnecting")
        expect(conn).to_have_text("reconnecting")
        p.shot("reconnecting")
        d.start()
        expect(conn).to_have_attribute("data-state", re.compile("live|resynced"))
        d.append(ev("ws_2", "eden", "miri", "after the restart"))
        expect(rows(page)).to_have_count(2)
        expect(rows(page).first).to_have_attribute("data-id", "ws_2")
        expect(conn).to_have_attribute("data-state", "live")
    finally:
        d.kill()


def test_phone_width_in_dark_mode(tmp_path: Path, new_page: Any) -> None:
    d = start(tmp_path, ev("ws_phone", "ruda", "grim", "작은 화면에서도 읽을 수 있어요 " * 4))
    try:
        p = new_page(width=390, height=800, dark=True)
        page = p.page
        page.goto(d.url + "/ui/")
        expect(rows(page)).to_have_count(1)
        page.goto(d.url + "/ui/#/session/ws_phone")
        expect(page.locator("#timeline")).to_contain_text("작은 화면")
        assert page.evaluate("document.scrollingElement.scrollWidth <= window.innerWidth")
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(17, 20, 24)", background  # the dark palette
        for view in ("agents", "stats", "attention"):
            page.goto(f"{d.url}/ui/#/{view}")
            expect(page.locator("main h1")).to_have_count(1)
            page.wait_for_load_state("networkidle")
            assert page.evaluate("document.scrollingElement.scrollWidth <= window.innerWidth"), view
        assert p.problems() == []
    finally:
        d.kill()


def test_the_agents_graph_and_the_stats_charts(tmp_path: Path, new_page: Any) -> None:
    d = start(tmp_path, ev("ws_g", "ruda", "grim", "one"), ev("ws_g", "ruda", "grim", "two"),
              ev("ws_g", "grim", "ruda", "back", kind="a2a.response"),
              ev("ws_g", "ruda", "eden", "three"),
              ev("ws_g", "ruda", "eden", "", kind="a2a.complete", error="agent run failed"))
    try:
        p = new_page()
        page = p.page
        page.goto(d.url + "/ui/#/agents?session=ws_g")
        edges = page.locator("svg.graph path.edge")
        expect(edges).to_have_count(3)
        expect(page.locator("svg.graph g.node")).to_have_count(3)
        heavy = page.locator('path.edge[data-from="ruda"][data-to="grim"]')
        assert heavy.get_attribute("data-weight") == "2"
        failed = page.locator('path.edge[data-from="ruda"][data-to="eden"]')
        assert "o-failed" in (failed.get_attribute("class") or "")
        p.shot("agents")
        page.goto(d.url + "/ui/#/stats?range=1h")
        expect(page.locator("figure.chart")).to_have_count(4)
        expect(page.locator(".charts .summary")).to_contain_text("5 events")
        assert p.problems() == []
    finally:
        d.kill()


def test_an_attention_item_opens_and_closes(tmp_path: Path, new_page: Any) -> None:
    # A fresh, unanswered send: the item opens while the page is open (pushed by the
    # daemon's timer after reply_timeout), and closes when the reply is appended.
    d = start(tmp_path, ev("ws_att", "ruda", "grim", "waiting for a reply"),
              config="[attention]\nreply_timeout = 2.0\n")
    try:
        p = new_page()
        page = p.page
        page.goto(d.url + "/ui/#/attention")
        expect(page.locator("#attention-unavailable")).to_have_count(0)
        item = page.locator('#attention-list li.item[data-kind="awaiting_reply"]')
        expect(item).to_have_count(0)
        expect(item).to_have_count(1, timeout=15_000)
        expect(item).to_contain_text("ws_att")
        expect(page.locator("#attention-count")).to_have_text("1")
        p.shot("attention-open")
        d.append(ev("ws_att", "grim", "ruda", "here is the reply", kind="a2a.response"))
        expect(item).to_have_count(0)
        expect(page.locator("#attention-list a")).to_have_count(0)
        assert p.problems() == []
    finally:
        d.kill()
