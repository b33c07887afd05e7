"""Workstation mode's policy (presence/lending.py) and its settings: the decision, its changes, and the safe side
when the idle time cannot be read. The clock here is a test one (the real clocks: tests/integration/
test_idle_clock.py under Xvfb)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from preview_desktop.core.farm_status import NodeState
from preview_desktop.errors import SettingsError
from preview_desktop.presence.idle import IdleUnavailable, open_idle_clock
from preview_desktop.presence.lending import Lending, decide
from preview_desktop.settings import load_settings

T = TypeVar("T")


class TestClock:
    """An IdleClock whose idle time the test sets; `gone` makes it fail as a lost X server does."""

    __test__ = False
    method = "test clock"

    def __init__(self) -> None:
        self.idle = 0.0
        self.gone = False
        self.closed = 0

    def idle_seconds(self) -> float:
        if self.gone:
            raise IdleUnavailable("the test display went away")
        return self.idle

    def close(self) -> None:
        self.closed += 1


def test_the_decision() -> None:
    assert decide("always", 10, None).state == NodeState.LENDING
    assert decide("never", 10, 9999).state == NodeState.NEVER
    assert decide("idle", 10, 599.9).state == NodeState.IDLE_ONLY_ACTIVE
    assert decide("idle", 10, 600).state == NodeState.LENDING
    assert decide("idle", 0.05, 3.0).lends and not decide("idle", 0.05, 2.9).lends
    unknown = decide("idle", 10, None, "no X11 display (DISPLAY is not set)")
    assert unknown.state == NodeState.IDLE_ONLY_UNKNOWN and not unknown.lends  # cannot tell: the user is present
    assert "DISPLAY is not set" in unknown.reason
    # the reason does not count seconds: a new reading in the same state is no change
    assert decide("idle", 10, 30) == decide("idle", 10, 300)
    assert "10 min" in decide("idle", 10, 30).reason and "3 s" in decide("idle", 0.05, 0).reason


def _run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, 20))


def test_lending_follows_the_user_and_tells_each_change_once() -> None:
    clock = TestClock()
    changes: list[str] = []

    async def scenario() -> None:
        lending = Lending("idle", 0.05, clock=lambda: clock, poll_s=3600)  # polled by hand below
        lending.on_change(lambda: changes.append(lending.state))
        clock.idle = 1.0
        await lending.start()  # the first reading happens before start returns
        assert lending.state == NodeState.IDLE_ONLY_ACTIVE and not lending.open()
        for idle in (2.0, 3.5, 10.0, 0.2, 0.4, 4.0):
            clock.idle = idle
            await lending.poll_once()
        assert lending.open()
        await lending.stop()

    _run(scenario())
    # not read yet -> active (start), then away at 3.5 s, back at 0.2 s, away again at 4 s
    assert changes == [NodeState.IDLE_ONLY_ACTIVE, NodeState.LENDING, NodeState.IDLE_ONLY_ACTIVE, NodeState.LENDING]
    assert clock.closed == 1


def test_no_idle_clock_means_no_lending_said_once(caplog: pytest.LogCaptureFixture) -> None:
    def no_clock() -> TestClock:
        raise IdleUnavailable("no X11 display (DISPLAY is not set)")

    async def scenario() -> Lending:
        lending = Lending("idle", 0.05, clock=no_clock, poll_s=3600, retry_s=0)
        await lending.start()
        for _ in range(5):
            await lending.poll_once()
        await lending.stop()
        return lending

    with caplog.at_level(logging.INFO, logger="preview_desktop.farm"):
        _run(scenario())
        lending = _run(scenario())
    assert lending.state == NodeState.IDLE_ONLY_UNKNOWN and not lending.open()
    assert "DISPLAY is not set" in lending.reason
    said = [r for r in caplog.records if "cannot tell whether the user is away" in r.getMessage()]
    assert len(said) == 2 and all(r.levelno == logging.WARNING for r in said)  # once per node, not per poll


def test_a_clock_that_dies_stops_lending_and_comes_back() -> None:
    clock = TestClock()

    async def scenario() -> list[str]:
        lending = Lending("idle", 0.05, clock=lambda: clock, poll_s=3600, retry_s=0)
        clock.idle = 60
        await lending.start()
        seen = [lending.state]
        clock.gone = True
        await lending.poll_once()
        seen.append(lending.state)
        clock.gone = False  # the X server is back: the clock is opened again
        await lending.poll_once()
        seen.append(lending.state)
        await lending.stop()
        return seen

    states = _run(scenario())
    assert states == [NodeState.LENDING, NodeState.IDLE_ONLY_UNKNOWN, NodeState.LENDING]
    assert clock.closed >= 1


def test_configure_applies_at_once() -> None:
    clock = TestClock()

    async def scenario() -> list[str]:
        lending = Lending("always", 10, clock=lambda: clock, poll_s=3600)
        seen: list[str] = []
        lending.on_change(lambda: seen.append(lending.state))
        await lending.start()
        assert lending.open()
        lending.configure("never", 10)
        clock.idle = 0
        lending.configure("idle", 10)  # never read yet: the decision holds until the poller's first reading
        await lending.poll_once()
        clock.idle = 3600
        await lending.poll_once()
        with pytest.raises(ValueError, match="always, idle, never"):
            lending.configure("sometimes", 10)
        await lending.stop()
        return seen

    states = _run(scenario())
    assert states == [NodeState.NEVER, NodeState.IDLE_ONLY_ACTIVE, NodeState.LENDING]


def test_open_idle_clock_says_why_not() -> None:
    with pytest.raises(IdleUnavailable, match="DISPLAY is not set"):
        open_idle_clock(env={}, platform="linux")
    with pytest.raises(IdleUnavailable, match="Wayland"):
        open_idle_clock(env={"WAYLAND_DISPLAY": "wayland-0", "DISPLAY": ":0"}, platform="linux")
    with pytest.raises(IdleUnavailable, match="cannot open the X11 display"):
        open_idle_clock(env={"DISPLAY": ":9876"}, platform="linux")  # nobody serves this display


# ---------------------------------------------------------------------------------------------- settings
def test_farm_when_defaults_to_idle_in_the_window_and_always_headless(tmp_path: Path) -> None:
    s = load_settings(env={"DATA_DIR": str(tmp_path)}, settings_file=tmp_path / "none.json")
    assert s.farm_when is None and s.farm_idle_minutes == 10
    assert s.farm_when_for(window=True) == "idle" and s.farm_when_for(window=False) == "always"
    s = load_settings(env={"DATA_DIR": str(tmp_path), "PREVIEW_FARM_WHEN": " Never ",
                           "PREVIEW_FARM_IDLE_MINUTES": "0.05"}, settings_file=tmp_path / "none.json")
    assert s.farm_when_for(window=True) == "never" and s.farm_when_for(window=False) == "never"
    assert s.farm_idle_minutes == 0.05 and {"farm_when", "farm_idle_minutes"} <= s.forced


@pytest.mark.parametrize(("env", "message"), [
    ({"PREVIEW_FARM_WHEN": "sometimes"}, "PREVIEW_FARM_WHEN: must be always, idle or never, got 'sometimes'"),
    ({"PREVIEW_FARM_IDLE_MINUTES": "0"}, "PREVIEW_FARM_IDLE_MINUTES: must be more than 0"),
    ({"PREVIEW_FARM_IDLE_MINUTES": "-1"}, "PREVIEW_FARM_IDLE_MINUTES: must be at least 0"),
    ({"PREVIEW_FARM_IDLE_MINUTES": "ten"}, "PREVIEW_FARM_IDLE_MINUTES: must be a number, got 'ten'"),
    ({"PREVIEW_FARM_IDLE_MINUTES": "inf"}, "PREVIEW_FARM_IDLE_MINUTES: must be more than 0 and at most"),
    ({"PREVIEW_FARM_IDLE_MINUTES": "nan"}, "PREVIEW_FARM_IDLE_MINUTES: must be at least 0"),
])
def test_bad_farm_lending_values_name_the_variable(tmp_path: Path, env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(env={"DATA_DIR": str(tmp_path), **env}, settings_file=tmp_path / "none.json")
    assert str(info.value).startswith(message)
