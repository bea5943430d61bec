"""UTC calendar periods for budgets: a day starts at 00:00 UTC, a week on Monday, a month on
the 1st.

Every function takes the time as an argument (unix seconds) so tests can inject a clock and
replicas agree on period boundaries without talking to each other.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Literal

Period = Literal["day", "week", "month"]
Clock = Callable[[], float]


def period_start(ts: float, period: Period) -> datetime:
    now = datetime.fromtimestamp(ts, tz=UTC)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return day
    if period == "week":
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def period_end(ts: float, period: Period) -> datetime:
    """The instant the period containing ``ts`` ends, i.e. when its budget resets."""
    start = period_start(ts, period)
    if period == "day":
        return start + timedelta(days=1)
    if period == "week":
        return start + timedelta(days=7)
    if start.month == 12:
        return start.replace(year=start.year + 1, month=1)
    return start.replace(month=start.month + 1)


def period_id(ts: float, period: Period) -> str:
    """A stable name for the period containing ``ts`` (part of counter keys)."""
    start = period_start(ts, period)
    if period == "day":
        return start.strftime("%Y-%m-%d")
    if period == "week":
        year, week, _ = start.isocalendar()
        return f"{year}-W{week:02d}"
    return start.strftime("%Y-%m")


def format_reset(ts: float, period: Period) -> str:
    return period_end(ts, period).strftime("%Y-%m-%d %H:%M UTC")
