"""Epoch seconds of a column of timestamp texts, as `datetime.fromisoformat` reads them.

A column of machine-written ISO 8601 times usually has one layout throughout
(`2025-01-01T10:00:00Z`); those are read as bytes in numpy, ~10x faster than one
`fromisoformat` per value. Any other layout, or any value that does not fit its column's
layout, is left to the caller's exact path.
"""

from __future__ import annotations

import numpy as np

_DATE_TIME = 19  # len("YYYY-MM-DDTHH:MM:SS")
_DATE_TIME_DIGITS = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18]
_DATE_TIME_SEPARATORS = {4: "-", 7: "-", 13: ":", 16: ":"}


def iso_column_seconds(values: list[str]) -> np.ndarray | None:
    """float64 epoch seconds of every value, or None unless all of them share one layout:
    `YYYY-MM-DD[T ]HH:MM:SS`, then optionally `.fff` or `.ffffff`, then optionally `Z` or
    `±HH:MM` (naive times are UTC). Invalid dates or times give None, never a wrong value."""
    if not values:
        return np.empty(0)
    first = values[0]
    length = len(first)
    if length < _DATE_TIME:
        return None
    tail = first[_DATE_TIME:]
    fraction = _fraction_digits(tail)
    if fraction is None:
        return None
    zone = tail[1 + fraction :] if fraction else tail
    if zone not in ("", "Z") and not (len(zone) == 6 and zone[0] in "+-" and zone[3] == ":"):
        return None
    try:
        text = "".join(values).encode("ascii")
    except UnicodeEncodeError:
        return None
    if len(text) != length * len(values):
        return None  # some value has another length
    table = np.frombuffer(text, dtype=np.uint8).reshape(len(values), length)
    if not _layout_matches(table, fraction, zone):
        return None

    digits = table - np.uint8(ord("0"))

    def number(start: int, stop: int) -> np.ndarray:
        value = digits[:, start].astype(np.int64)
        for column in range(start + 1, stop):
            value = value * 10 + digits[:, column]
        return value

    year, month, day = number(0, 4), number(5, 7), number(8, 10)
    hour, minute, second = number(11, 13), number(14, 16), number(17, 19)
    if not _valid_date_time(year, month, day, hour, minute, second):
        return None
    seconds = _days_from_civil(year, month, day) * 86_400 + hour * 3_600 + minute * 60 + second
    if len(zone) == 6:
        offset_hours, offset_minutes = number(length - 5, length - 3), number(length - 2, length)
        if (offset_hours > 23).any() or (offset_minutes > 59).any():
            return None
        sign = np.where(table[:, length - 6] == ord("-"), -1, 1)
        seconds = seconds - sign * (offset_hours * 3_600 + offset_minutes * 60)
    if not fraction:
        return seconds.astype(np.float64)
    micros = seconds * 1_000_000 + number(_DATE_TIME + 1, _DATE_TIME + 1 + fraction) * 10 ** (
        6 - fraction
    )
    if (np.abs(micros) >= 2**53).any():
        return None  # beyond year 2255 a float64 no longer holds every microsecond exactly
    # As datetime.timestamp(): whole microseconds divided by 10**6, correctly rounded.
    return micros.astype(np.float64) / 1e6


def _fraction_digits(tail: str) -> int | None:
    if not tail.startswith("."):
        return 0
    digits = len(tail[1:]) - len(tail[1:].lstrip("0123456789"))
    return digits if digits in (3, 6) else None


def _layout_matches(table: np.ndarray, fraction: int, zone: str) -> bool:
    length = table.shape[1]
    digit_columns = _DATE_TIME_DIGITS + list(range(_DATE_TIME + 1, _DATE_TIME + 1 + fraction))
    if len(zone) == 6:
        digit_columns += [length - 5, length - 4, length - 2, length - 1]
    digits = table[:, digit_columns]
    if ((digits < ord("0")) | (digits > ord("9"))).any():
        return False
    separators = dict(_DATE_TIME_SEPARATORS)
    if fraction:
        separators[_DATE_TIME] = "."
    if zone == "Z":
        separators[length - 1] = "Z"
    elif zone:
        separators[length - 3] = ":"
        sign = table[:, length - 6]
        if not ((sign == ord("+")) | (sign == ord("-"))).all():
            return False
    if any((table[:, column] != ord(char)).any() for column, char in separators.items()):
        return False
    middle = table[:, 10]
    return bool(((middle == ord("T")) | (middle == ord(" "))).all())


def _valid_date_time(year, month, day, hour, minute, second) -> bool:
    if (year < 1).any() or ((month < 1) | (month > 12)).any() or (day < 1).any():
        return False
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    month_days = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])[month - 1]
    if (day > month_days + (leap & (month == 2))).any():
        return False
    return not ((hour > 23).any() or (minute > 59).any() or (second > 59).any())


def _days_from_civil(year: np.ndarray, month: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Days since 1970-01-01 of proleptic Gregorian dates (H. Hinnant's algorithm)."""
    year = year - (month <= 2)
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * np.where(month > 2, month - 3, month + 9) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146_097 + day_of_era - 719_468
