"""The JavaScript value helpers: the one ISO-8601 formatter."""

from __future__ import annotations

import pytest

from coordd.core.jsvalues import iso_ms

NOW = 1_771_329_600_000


#: `new Date(ms).toISOString()` as node writes it: the time value is truncated towards zero
#: to whole milliseconds (never rounded), then the remainder taken positive.
@pytest.mark.parametrize(("ms", "expected"), [
    (0, "1970-01-01T00:00:00.000Z"),
    (NOW, "2026-02-17T12:00:00.000Z"),
    (NOW + 7, "2026-02-17T12:00:00.007Z"),
    (1_771_329_758_110, "2026-02-17T12:02:38.110Z"),
    (1_771_329_758_110.9, "2026-02-17T12:02:38.110Z"),
    (NOW + 7.9995, "2026-02-17T12:00:00.007Z"),
    (999.9996, "1970-01-01T00:00:00.999Z"),
    (1999.9999999, "1970-01-01T00:00:01.999Z"),
    (-1, "1969-12-31T23:59:59.999Z"),
    (-1.5, "1969-12-31T23:59:59.999Z"),
    (-1000.5, "1969-12-31T23:59:59.000Z"),
    (-1001, "1969-12-31T23:59:58.999Z"),
    (-62_135_596_800_000, "0001-01-01T00:00:00.000Z"),
    (253_402_300_799_999, "9999-12-31T23:59:59.999Z"),
])
def test_iso_ms_is_javascript_to_iso_string(ms: float, expected: str) -> None:
    assert iso_ms(ms) == expected
