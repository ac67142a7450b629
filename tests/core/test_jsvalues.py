"""The JavaScript value helpers: the ISO-8601 formatter and `Date.parse`."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coordd.core.jsvalues import iso_ms, parse_js_date

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


@given(st.integers(-62_135_596_800_000, 253_402_300_799_999))
def test_parse_js_date_reads_back_every_time_value_exactly(ms: int) -> None:
    """`Date.parse(new Date(ms).toISOString()) === ms`: whole milliseconds, no float drift
    (1.001 s is 1001, not 1000.9999999999999)."""
    assert parse_js_date(iso_ms(ms)) == ms


@pytest.mark.parametrize(("text", "ms"), [
    ("1970-01-01T00:00:01.001Z", 1001),
    ("1970-01-01T00:00:01.0019Z", 1001),  # digits beyond the millisecond are dropped
    ("2026-03-01T10:00:00.123+09:00", 1_772_326_800_123),
    ("2026-03-01", 1_772_323_200_000),  # date-only: UTC
    ("1969-12-31T23:59:59.999Z", -1),
])
def test_parse_js_date_is_date_parse(text: str, ms: int) -> None:
    assert parse_js_date(text) == ms
