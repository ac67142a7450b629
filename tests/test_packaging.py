"""Packaging metadata: the SPDX license string (the `project.license` table is deprecated
and setuptools warns on every build), with a setuptools that understands it."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("pyproject", [ROOT / "pyproject.toml",
                                       ROOT / "plugins" / "coordd-rules" / "pyproject.toml"],
                         ids=["coordd", "coordd-rules"])
def test_license_is_an_spdx_string(pyproject: Path) -> None:
    with open(pyproject, "rb") as f:
        doc = tomllib.load(f)
    assert doc["project"]["license"] == "MIT"
    # setuptools reads `license = "<SPDX>"` from version 77 on.
    (setuptools,) = [r for r in doc["build-system"]["requires"] if r.startswith("setuptools")]
    m = re.fullmatch(r"setuptools>=(\d+)(\.\d+)*", setuptools)
    assert m is not None and int(m.group(1)) >= 77, setuptools
