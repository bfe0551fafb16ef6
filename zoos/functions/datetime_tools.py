"""Dates and times."""

from __future__ import annotations

from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo


async def now(timezone_name: str = "UTC") -> str:
    """The current date and time in ISO 8601, in an IANA time zone such as 'Europe/Paris'."""
    zone = timezone.utc if timezone_name.upper() == "UTC" else ZoneInfo(timezone_name)
    return datetime.now(zone).isoformat(timespec="seconds")


async def days_between(start: str, end: str) -> int:
    """Days from ``start`` to ``end`` (ISO dates such as 2026-01-31)."""
    return (date.fromisoformat(end) - date.fromisoformat(start)).days
