"""Convert the time notations of public datasets to UTC epoch milliseconds.

Every function takes the text of one cell and raises ``ValueError`` naming the
value and the expected notation. Sub-millisecond parts are rounded half to even,
so 1411462780.5125 s becomes 1411462780512 ms and 1411462780.5135 s becomes
1411462780514 ms.

>>> seconds_to_ms("1411462780.513")
1411462780513
>>> iso_to_ms("2014-04-07T10:51:09.277Z")
1396867869277
>>> iso_to_ms("2019-12-01 00:00:00 UTC")
1575158400000
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

MS_PER_SECOND = 1000
US_PER_MS = 1000

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
ONE_MICROSECOND = timedelta(microseconds=1)

UTC_SUFFIX = " UTC"
"""Suffix that REES46 writes after its times, e.g. ``2019-12-01 00:00:00 UTC``."""

_DECIMAL_NUMBER = re.compile(r"[+-]?\d+(\.\d*)?")
_INTEGER = re.compile(r"[+-]?\d+")


def _round_half_even(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_HALF_EVEN))


def decimal_to_ms(value: Decimal, unit_ms: int) -> int:
    """Convert a count of ``unit_ms``-millisecond units to whole milliseconds."""
    return _round_half_even(value * unit_ms)


def seconds_to_ms(text: str) -> int:
    """Parse unix seconds with an optional fraction (``1411462780.513``) as milliseconds.

    The text is parsed as a ``Decimal``, not a float, so the result is exact.
    """
    stripped = text.strip()
    if not _DECIMAL_NUMBER.fullmatch(stripped):
        raise ValueError(
            f"{text!r} is not unix seconds: expected digits with an optional "
            "fraction, such as 1411462780.513"
        )
    try:
        seconds = Decimal(stripped)
    except InvalidOperation as error:
        raise ValueError(f"{text!r} is not a decimal number of unix seconds") from error
    return decimal_to_ms(seconds, MS_PER_SECOND)


def milliseconds_to_int(text: str) -> int:
    """Parse whole unix milliseconds (``1433221332117``)."""
    stripped = text.strip()
    if not _INTEGER.fullmatch(stripped):
        raise ValueError(
            f"{text!r} is not unix milliseconds: expected an integer such as 1433221332117"
        )
    return int(stripped)


def datetime_to_ms(moment: datetime) -> int:
    """Convert a ``datetime`` to epoch milliseconds, reading a naive ``datetime`` as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    microseconds = (moment - EPOCH) // ONE_MICROSECOND
    return _round_half_even(Decimal(microseconds) / US_PER_MS)


def iso_to_ms(text: str) -> int:
    """Parse an ISO-8601 time (``2014-04-07T10:51:09.277Z``) as epoch milliseconds.

    A trailing `` UTC`` is accepted, and a time without an offset is read as UTC.
    Digits past the microsecond are dropped by ``datetime.fromisoformat``.
    """
    stripped = text.strip()
    if stripped.endswith(UTC_SUFFIX):
        stripped = stripped[: -len(UTC_SUFFIX)]
    try:
        moment = datetime.fromisoformat(stripped)
    except ValueError as error:
        raise ValueError(
            f"{text!r} is not an ISO-8601 time such as 2014-04-07T10:51:09.277Z"
        ) from error
    return datetime_to_ms(moment)


def date_to_ms(text: str) -> int:
    """Parse an ISO-8601 date (``2016-05-09``) as epoch milliseconds of its 00:00 UTC."""
    try:
        day = date.fromisoformat(text.strip())
    except ValueError as error:
        raise ValueError(f"{text!r} is not an ISO-8601 date such as 2016-05-09") from error
    return datetime_to_ms(datetime(day.year, day.month, day.day, tzinfo=timezone.utc))
