"""Time as the Kubernetes API writes it: UTC, RFC 3339, to the second."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def format_time(value: datetime) -> str:
    return value.isoformat(timespec="seconds").replace("+00:00", "Z")


def parse_time(value: str | None) -> datetime | None:
    """None for a missing or unreadable value: a record someone mangled is no record."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    # A time without a zone (hand-written) is read as UTC: comparing it with the clock
    # must not raise.
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
