"""Category overrides: reading rules, the atomic upstream-format write, picking up another
process's edit, the file's place in the state directory."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from coordd.core.jsvalues import iso_ms
from coordd.core.overrides import Overrides, adopt_legacy_file
from coordd.core.vocabulary import CATEGORIES, CategoryVocabulary

NOW = 1_771_329_600_000


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def make(path: Path, clock: FakeClock | None = None, **kw: object) -> Overrides:
    return Overrides(path, clock=clock or FakeClock(), wall_ms=lambda: NOW, **kw)  # type: ignore[arg-type]


def test_reading_rules(tmp_path: Path) -> None:
    path = tmp_path / "ov.json"
    path.write_text(json.dumps({
        "ok": {"collabCategory": " qa_validation ", "updatedAt": "2026-01-01T00:00:00.000Z",
               "updatedBy": "  "},
        "by": {"collabCategory": "infra_ops", "updatedBy": " ops "},
        "bad": {"collabCategory": "bogus"},
        "notobj": "infra_ops",
    }))
    ov = make(path)
    assert ov.categories_by_session() == {"ok": "qa_validation", "by": "infra_ops"}
    assert ov.entries()["ok"].as_json() == {"collabCategory": "qa_validation",
                                            "updatedAt": "2026-01-01T00:00:00.000Z"}
    # missing updatedAt => now; updatedBy trimmed
    assert ov.entries()["by"].as_json() == {"collabCategory": "infra_ops",
                                            "updatedAt": iso_ms(NOW), "updatedBy": "ops"}


@pytest.mark.parametrize("content", [b"", b"{not json", b"[1,2]", b"\xff\xfe"])
def test_unreadable_file_means_no_overrides(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "ov.json"
    path.write_bytes(content)
    assert len(make(path)) == 0


def test_write_is_atomic_and_upstream_formatted(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "ov.json"  # directory created on demand
    ov = make(path)
    entry = ov.set("ws_1", "qa_validation", updated_by="oracle", now_ms=NOW)
    ov.set("ws_2", "docs_knowledge", updated_by=None, now_ms=NOW + 1)
    assert entry.as_json() == {"collabCategory": "qa_validation", "updatedAt": iso_ms(NOW),
                               "updatedBy": "oracle"}
    assert path.read_text() == (
        '{\n  "ws_1": {\n    "collabCategory": "qa_validation",\n'
        f'    "updatedAt": "{iso_ms(NOW)}",\n    "updatedBy": "oracle"\n  }},\n'
        '  "ws_2": {\n    "collabCategory": "docs_knowledge",\n'
        f'    "updatedAt": "{iso_ms(NOW + 1)}"\n  }}\n}}\n'
    )
    assert os.listdir(path.parent) == ["ov.json"]  # no temporary left behind
    assert ov.get("ws_1") == "qa_validation"
    with pytest.raises(ValueError):
        ov.set("ws_1", "bogus", updated_by=None, now_ms=NOW)


def test_set_rereads_the_file_first(tmp_path: Path) -> None:
    path = tmp_path / "ov.json"
    ov = make(path)
    path.write_text(json.dumps({"other": {"collabCategory": "biz_strategy",
                                          "updatedAt": "x"}}))
    ov.set("ws_1", "qa_validation", updated_by=None, now_ms=NOW)
    assert set(json.loads(path.read_text())) == {"other", "ws_1"}


def test_external_change_is_picked_up_after_the_interval(tmp_path: Path) -> None:
    path = tmp_path / "ov.json"
    clock = FakeClock()
    ov = make(path, clock)
    ov.set("ws_1", "qa_validation", updated_by=None, now_ms=NOW)
    version = ov.version
    # another process replaces the file (same size, new inode: rename-style)
    tmp = tmp_path / "new.json"
    tmp.write_text(json.dumps({"ws_1": {"collabCategory": "legal_compliance",
                                        "updatedAt": "y"}}, indent=2) + "\n")
    os.replace(tmp, path)
    assert not ov.refresh()  # within the interval: not even stat'ed
    assert ov.get("ws_1") == "qa_validation"
    clock.t += 1.5
    assert ov.refresh()
    assert ov.get("ws_1") == "legal_compliance"
    assert ov.version > version
    clock.t += 1.5
    assert not ov.refresh()  # unchanged
    path.unlink()
    clock.t += 1.5
    assert ov.refresh()
    assert len(ov) == 0


def test_in_place_edit_with_same_size_is_seen(tmp_path: Path) -> None:
    path = tmp_path / "ov.json"
    clock = FakeClock()
    ov = make(path, clock)
    ov.set("ws_1", "qa_validation", updated_by=None, now_ms=NOW)
    text = path.read_text().replace("qa_validation", "infra_ops____")
    st = path.stat()
    with open(path, "w") as fh:  # same inode, same size, mtime moved on
        fh.write(text.replace("infra_ops____", "biz_strategy_"))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    clock.t += 2
    ov.refresh()
    # "biz_strategy_" is not a category: the entry is dropped, as upstream does
    assert ov.get("ws_1") is None


def test_plugin_categories(tmp_path: Path) -> None:
    path = tmp_path / "ov.json"
    path.write_text(json.dumps({"w": {"collabCategory": "security_review", "updatedAt": "x"}}))
    vocabulary = CategoryVocabulary(["security_review"])
    ov = make(path, categories=vocabulary)
    assert ov.get("w") == "security_review"
    ov.set("w2", "security_review", updated_by=None, now_ms=NOW)
    assert make(path, categories=vocabulary).get("w2") == "security_review"


def test_an_unknown_category_is_refused_with_the_valid_ones(tmp_path: Path) -> None:
    ov = make(tmp_path / "ov.json", categories=CategoryVocabulary(["billing"]))
    with pytest.raises(ValueError) as info:
        ov.set("w", "bling", updated_by=None, now_ms=NOW)
    assert str(info.value) == ("unknown category 'bling': expected one of "
                               f"{', '.join(CATEGORIES)}, billing")


def test_overrides_to_a_category_not_valid_now_are_kept_in_the_file(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # The plugin declaring "billing" is disabled for a while: its overrides do not apply,
    # but a write in the meantime must not lose them.
    path = tmp_path / "ov.json"
    path.write_text(json.dumps({"w": {"collabCategory": "billing", "updatedAt": "x"}}))
    ov = make(path)
    assert ov.get("w") is None
    assert "'w': 'billing'" in caplog.text and "kept in the file" in caplog.text
    ov.set("w2", "infra_ops", updated_by=None, now_ms=NOW)
    again = make(path, categories=CategoryVocabulary(["billing"]))
    assert (again.get("w"), again.get("w2")) == ("billing", "infra_ops")
    assert json.loads(path.read_text())["w"] == {"collabCategory": "billing", "updatedAt": "x"}


def test_failed_write_leaves_memory_unchanged(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    ov = make(blocker / "ov.json")  # parent is a file: cannot be created
    with pytest.raises(OSError):
        ov.set("ws_1", "qa_validation", updated_by=None, now_ms=NOW)
    assert ov.get("ws_1") is None


def test_memory_only() -> None:
    ov = Overrides(None)
    ov.set("ws_1", "infra_ops", updated_by="me", now_ms=NOW)
    assert ov.get("ws_1") == "infra_ops"
    assert not ov.refresh(force=True)


def test_legacy_file_is_copied_once(tmp_path: Path) -> None:
    legacy = tmp_path / "home" / "ov.json"
    legacy.parent.mkdir()
    legacy.write_text(json.dumps({"w": {"collabCategory": "infra_ops", "updatedAt": "x"}}))
    path = tmp_path / "state" / "ov.json"
    assert adopt_legacy_file(path, legacy)
    assert path.read_bytes() == legacy.read_bytes()
    assert os.listdir(path.parent) == ["ov.json"]
    assert make(path).get("w") == "infra_ops"
    legacy.write_text("{}")
    assert not adopt_legacy_file(path, legacy)  # the new file exists: left alone
    assert make(path).get("w") == "infra_ops"
    assert not adopt_legacy_file(tmp_path / "other.json", tmp_path / "missing.json")
    assert not (tmp_path / "other.json").exists()


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    import threading

    ov = make(tmp_path / "ov.json")
    threads = [threading.Thread(target=ov.set, args=(f"w{i}", "infra_ops"),
                                kwargs={"updated_by": None, "now_ms": NOW}) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(json.loads((tmp_path / "ov.json").read_text())) == {f"w{i}" for i in range(8)}
