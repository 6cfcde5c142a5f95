"""The page byte budget's quick bound (server/repositories/paging.py quick_bound) never
counts a row as less than the element-by-element estimate it stands in for, whatever the
JSON: so a page kept whole by the quick bound is one the estimate would have kept whole."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowrun.server.repositories.paging import _ROW_OVERHEAD, estimated_bytes, quick_bound

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(),
    lambda children: st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=8), children, max_size=6),
    max_leaves=40,
)
COLUMN = JSON | st.datetimes(timezones=st.just(UTC)) | st.uuids().map(str)


def estimate(row) -> int:
    return _ROW_OVERHEAD + sum(estimated_bytes(value) for value in row)


@pytest.mark.slow  # 400 examples: seconds
@settings(max_examples=400, deadline=None)
@given(st.lists(COLUMN, max_size=12))
def test_the_quick_bound_is_never_below_the_estimate(row):
    assert quick_bound(row) >= estimate(row)


def test_the_tightest_values_are_within_the_bound():
    """The shortest JSON tokens, where the estimate is largest against the text."""
    for value in ([1] * 50, [[]] * 50, [{}] * 50, {"": [0, 0]}, [True, None, 0], "é" * 10, "\U0001f600", 0, None):
        assert quick_bound([value]) >= estimate([value]), value
    assert quick_bound([{"when": datetime(2026, 1, 1, tzinfo=UTC)}]) >= estimate([{"when": datetime.now(UTC)}])
