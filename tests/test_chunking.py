"""Date parsing, calendar-month arithmetic and the splitting of date ranges and item lists."""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta

import pytest

from flowzero.chunking import (
    PLANET_MAX_ITEMS_PER_ORDER,
    add_months,
    parse_date,
    split_date_range,
    split_items,
)
from flowzero.errors import UsageError

# --- parse_date ---


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-01-01", date(2024, 1, 1)),
        ("2024-02-29", date(2024, 2, 29)),  # leap year
        ("2000-02-29", date(2000, 2, 29)),  # divisible by 400: leap
        (" 2024-12-31 ", date(2024, 12, 31)),
    ],
)
def test_parse_date_accepts_iso_dates(text: str, expected: date) -> None:
    assert parse_date(text, "--start-date") == expected


def test_parse_date_passes_dates_through_and_truncates_datetimes() -> None:
    assert parse_date(date(2024, 5, 6)) == date(2024, 5, 6)
    assert parse_date(datetime(2024, 5, 6, 23, 59)) == date(2024, 5, 6)


@pytest.mark.parametrize(
    "text",
    ["2024/01/01", "01-02-2024", "2024-1-1", "20240101", "2024-01-01T00:00:00", "yesterday", "", "2024-01"],
)
def test_parse_date_rejects_other_formats_naming_what_and_value(text: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_date(text, "--end-date")
    assert "--end-date" in info.value.message
    assert text.strip() in info.value.message
    assert "YYYY-MM-DD" in info.value.message
    assert info.value.exit_code == 2


@pytest.mark.parametrize(
    "text", ["2023-02-29", "1900-02-29", "2024-02-30", "2024-13-01", "2024-00-10", "2024-04-31"]
)
def test_parse_date_rejects_impossible_days(text: str) -> None:
    with pytest.raises(UsageError, match=r"invalid start date '" + text):
        parse_date(text, "start date")


def test_parse_date_rejects_none() -> None:
    with pytest.raises(UsageError):
        parse_date(None, "date")  # type: ignore[arg-type]


# --- add_months ---


@pytest.mark.parametrize(
    ("day", "months", "expected"),
    [
        (date(2024, 1, 31), 1, date(2024, 2, 29)),  # leap February
        (date(2023, 1, 31), 1, date(2023, 2, 28)),
        (date(2024, 8, 31), 6, date(2025, 2, 28)),
        (date(2024, 12, 15), 1, date(2025, 1, 15)),
        (date(2024, 3, 31), -1, date(2024, 2, 29)),
        (date(2024, 1, 1), 24, date(2026, 1, 1)),
        (date(2024, 5, 31), 1, date(2024, 6, 30)),
        (date(2024, 7, 10), 0, date(2024, 7, 10)),
    ],
)
def test_add_months_clamps_to_month_end(day: date, months: int, expected: date) -> None:
    assert add_months(day, months) == expected


# --- split_date_range ---


def test_year_in_six_month_chunks_is_two_halves() -> None:
    assert split_date_range(date(2024, 1, 1), date(2024, 12, 31), 6) == [
        (date(2024, 1, 1), date(2024, 6, 30)),
        (date(2024, 7, 1), date(2024, 12, 31)),
    ]


def test_default_chunk_is_six_months() -> None:
    assert split_date_range(date(2023, 1, 1), date(2023, 12, 31)) == [
        (date(2023, 1, 1), date(2023, 6, 30)),
        (date(2023, 7, 1), date(2023, 12, 31)),
    ]


def test_single_day_and_short_ranges_are_one_chunk() -> None:
    assert split_date_range(date(2024, 2, 29), date(2024, 2, 29)) == [(date(2024, 2, 29), date(2024, 2, 29))]
    assert split_date_range(date(2024, 3, 5), date(2024, 4, 20), 6) == [(date(2024, 3, 5), date(2024, 4, 20))]


def test_exactly_max_months_is_one_chunk_and_one_more_day_is_two() -> None:
    assert split_date_range(date(2024, 1, 1), date(2024, 6, 30), 6) == [(date(2024, 1, 1), date(2024, 6, 30))]
    assert split_date_range(date(2024, 1, 1), date(2024, 7, 1), 6) == [
        (date(2024, 1, 1), date(2024, 6, 30)),
        (date(2024, 7, 1), date(2024, 7, 1)),
    ]


def test_monthly_chunks_follow_calendar_months_through_a_leap_february() -> None:
    chunks = split_date_range(date(2024, 1, 1), date(2024, 12, 31), 1)
    assert len(chunks) == 12
    assert chunks[1] == (date(2024, 2, 1), date(2024, 2, 29))
    assert all(s.day == 1 for s, _ in chunks)
    assert all((e + timedelta(days=1)).day == 1 for _, e in chunks)


def test_mid_month_start() -> None:
    assert split_date_range(date(2023, 11, 15), date(2024, 9, 1), 6) == [
        (date(2023, 11, 15), date(2024, 5, 14)),
        (date(2024, 5, 15), date(2024, 9, 1)),
    ]


def test_month_end_start_never_exceeds_max_months() -> None:
    chunks = split_date_range(date(2024, 8, 31), date(2025, 9, 1), 6)
    assert chunks == [
        (date(2024, 8, 31), date(2025, 2, 27)),
        (date(2025, 2, 28), date(2025, 8, 27)),
        (date(2025, 8, 28), date(2025, 9, 1)),
    ]


def _months_ok(start: date, end: date, max_months: int) -> bool:
    return end < add_months(start, max_months)


def test_random_ranges_are_contiguous_non_overlapping_covering_and_bounded() -> None:
    rng = random.Random(20241030)
    for _ in range(400):
        start = date(2016, 1, 1) + timedelta(days=rng.randrange(0, 3000))
        end = start + timedelta(days=rng.randrange(0, 1500))
        max_months = rng.randrange(1, 13)
        chunks = split_date_range(start, end, max_months)
        assert chunks[0][0] == start
        assert chunks[-1][1] == end
        for (_, e1), (s2, _) in zip(chunks, chunks[1:]):
            assert s2 == e1 + timedelta(days=1)
        for s, e in chunks:
            assert s <= e
            assert _months_ok(s, e, max_months), (start, end, max_months, s, e)
        # no chunk but the last is shorter than it must be: merging any two neighbours would exceed the limit
        for (s1, _), (_, e2) in zip(chunks, chunks[1:]):
            assert not _months_ok(s1, e2, max_months)


def test_reversed_range_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="2024-01-01 is before the start date 2024-02-01"):
        split_date_range(date(2024, 2, 1), date(2024, 1, 1))


@pytest.mark.parametrize("bad", [0, -3])
def test_chunk_length_must_be_positive(bad: int) -> None:
    with pytest.raises(UsageError, match="at least 1 month"):
        split_date_range(date(2024, 1, 1), date(2024, 2, 1), bad)


# --- split_items ---


def test_split_items_respects_planet_limit() -> None:
    ids = [f"item{i:04d}" for i in range(1234)]
    batches = split_items(ids)
    assert PLANET_MAX_ITEMS_PER_ORDER == 500
    assert [len(b) for b in batches] == [500, 500, 234]
    assert [i for b in batches for i in b] == ids


@pytest.mark.parametrize(
    ("count", "sizes"), [(0, []), (1, [1]), (500, [500]), (501, [500, 1]), (1000, [500, 500])]
)
def test_split_items_boundaries(count: int, sizes: list[int]) -> None:
    assert [len(b) for b in split_items([str(i) for i in range(count)])] == sizes


def test_split_items_drops_duplicates_keeping_first_order() -> None:
    assert split_items(["b", "a", "b", "c", "a", "d"], limit=2) == [["b", "a"], ["c", "d"]]


def test_split_items_accepts_any_iterable() -> None:
    assert split_items(iter(["x", "y", "z"]), limit=2) == [["x", "y"], ["z"]]


def test_split_items_limit_must_be_positive() -> None:
    with pytest.raises(UsageError):
        split_items(["a"], limit=0)
