"""Parity with the old monitor: replay its ~165 recorded requests per corpus against the real
daemon and compare with `tests/parity/compare.py` (every upstream key and value must match; the
deliberate fixes it lists are the only allowed deviations). See tests/parity/README.md."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.daemon import Daemon

pytestmark = pytest.mark.slow

PARITY = Path(__file__).resolve().parent / "parity"
sys.path.insert(0, str(PARITY))
import compare  # noqa: E402


@pytest.mark.parametrize("corpus", ["past", "future"])
def test_parity_with_the_old_monitor(tmp_path: Path, corpus: str) -> None:
    src = PARITY / f"dev-{corpus}"
    home = tmp_path / "home"
    logs = home / ".openclaw" / "logs"
    logs.mkdir(parents=True)
    log = logs / "coordination-events.ndjson"
    shutil.copy(src / "coordination-events.ndjson", log)
    shutil.copy(src / "openclaw.json", home / ".openclaw" / "openclaw.json")
    expected = tmp_path / "expected"
    with tarfile.open(src / "upstream-responses.tar.xz") as tar:
        tar.extractall(expected, filter="data")
    actual = tmp_path / "actual"
    d = Daemon(home).start()
    try:
        port = d.url.rsplit(":", 1)[1]
        r = subprocess.run(
            [sys.executable, str(PARITY / "dump.py"), port, str(actual), "--events", str(log),
             "--writes"],
            capture_output=True, text=True, timeout=300,
        )
        assert r.returncode == 0, r.stderr[-3000:]
    finally:
        d.kill()
    res = compare.compare_dumps(str(expected), str(actual), corpus, verbose=False, show=20)
    report = "\n".join(res.lines)
    print(report)
    assert res.compared > 100, report
    assert res.mismatches == 0, report
