"""The one status path: the planner's summary becomes the status model in one function
(``to_status``), and a recorded status comes back in one (``summary_of``)."""

from __future__ import annotations

from datetime import UTC, datetime

from bluegreen.api.models import BlueGreenAppStatus, CheckStatus
from bluegreen.core import status
from bluegreen.core.plans import Summary

NOW = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)
CHECK = CheckStatus(
    name="smoke", stage="prod", revision="r2", retry=1, state="Failed", failures=3, message="no"
)
SUMMARY = Summary(
    phase="Degraded",
    reason="RolledBack",
    message="switched prod back",
    active_color="blue",
    active_revision="r1",
    available=True,
    preview_color="green",
    preview_revision="r2",
    previous_revision="r2",
    switched_at="2026-11-26T11:59:00Z",
    replicas=3,
    selector="bluegreen.dev/app=demo,bluegreen.dev/color=blue",
    checks=(CHECK,),
    rolled_back=("r2", 1),
)


def test_a_written_summary_comes_back_as_it_went() -> None:
    written = status.to_status(SUMMARY, generation=2, previous=BlueGreenAppStatus(), now=NOW)
    assert status.summary_of(written) == SUMMARY


def test_an_unknown_availability_comes_back_unknown() -> None:
    unknown = Summary("Degraded", "Forbidden", "no", "blue", "r1", available=None)
    written = status.to_status(unknown, generation=2, previous=BlueGreenAppStatus(), now=NOW)
    assert status.summary_of(written).available is None


def test_a_status_never_written_reads_as_nothing_live() -> None:
    empty = status.summary_of(BlueGreenAppStatus())
    assert (empty.active_color, empty.active_revision, empty.rolled_back) == (None, None, None)
    assert (empty.available, empty.checks) == (None, ())
