"""The announce policy with hand-moved clocks: expiry, duplicates, mute, quiet hours, rate limits."""

from __future__ import annotations

import datetime
import json
import logging
import stat
from dataclasses import replace
from pathlib import Path

import pytest

from voicehello.announce import policy as policy_module
from voicehello.announce.policy import AnnouncePolicy, Decision, QuietHours
from voicehello.announce.rates import RATES_FILE, RateWindows
from voicehello.bus.messages import Message, Sender, new_message
from voicehello.config import AnnounceSettings
from voicehello.errors import ConfigError

MAYA = Sender("maya-12", "Maya at number 12")
SAM = Sender("sam-4", "Sam")
START = 1_800_000_000.0


class Clock:
    """Unix time and local time of day, moved by hand together."""

    def __init__(self, at: str = "12:00") -> None:
        self.now = START
        hour, minute = (int(part) for part in at.split(":"))
        self.day = datetime.datetime(2027, 1, 15, hour, minute)

    def __call__(self) -> float:
        return self.now

    def local(self) -> datetime.time:
        return self.day.time()

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.day += datetime.timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make(clock: Clock, **settings: object) -> AnnouncePolicy:
    return AnnouncePolicy(AnnounceSettings(**settings), clock=clock, local_time=clock.local)  # type: ignore[arg-type]


def message(clock: Clock, sender: Sender = MAYA, ttl_s: float | None = None) -> Message:
    return new_message(sender, "borrow_item", {"item": "ladder"}, now=clock.now, ttl_s=ttl_s)


def test_a_fresh_message_is_spoken(clock: Clock) -> None:
    assert make(clock).decide(message(clock)) == Decision("speak", "ok")


def test_expired_messages_are_dropped(clock: Clock) -> None:
    policy = make(clock)
    old = message(clock, ttl_s=10)
    clock.advance(10)
    assert policy.decide(old) == Decision("drop", "expired")


def test_duplicates_are_dropped_until_the_message_expires(clock: Clock) -> None:
    policy = make(clock)
    first = message(clock, ttl_s=60)
    assert policy.decide(first).action == "speak"
    assert policy.decide(first) == Decision("drop", "duplicate")
    assert policy.decide(replace(first, text="same id, other text")).reason == "duplicate"
    clock.advance(61)
    assert policy.decide(first) == Decision("drop", "expired")  # never spoken again
    assert first.id not in policy._seen  # forgotten once expired: memory stays bounded


def test_duplicate_memory_is_bounded(clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(policy_module, "MAX_REMEMBERED_IDS", 50)
    policy = make(clock, rate_limit=1000)
    for _ in range(200):
        policy.decide(message(clock))
    assert len(policy._seen) == 50


def test_muted_neighbors_are_dropped(clock: Clock) -> None:
    policy = make(clock, mute=("sam-4",))
    assert policy.decide(message(clock, SAM)) == Decision("drop", "sam-4 is muted")
    assert policy.decide(message(clock, MAYA)).action == "speak"


@pytest.mark.parametrize(
    ("at", "quiet"),
    [
        ("21:59", False),
        ("22:00", True),
        ("23:59", True),
        ("00:00", True),
        ("03:30", True),
        ("06:59", True),
        ("07:00", False),
        ("12:00", False),
    ],
)
def test_quiet_hours_wrap_midnight(at: str, quiet: bool) -> None:
    clock = Clock(at)
    decision = make(clock, quiet_hours="22:00-07:00").decide(message(clock))
    assert decision.action == ("queue" if quiet else "speak")


@pytest.mark.parametrize(
    ("at", "quiet"), [("12:59", False), ("13:00", True), ("13:59", True), ("14:00", False)]
)
def test_quiet_hours_within_a_day(at: str, quiet: bool) -> None:
    clock = Clock(at)
    assert make(clock, quiet_hours="13:00-14:00").in_quiet_hours() is quiet


def test_quiet_hours_parsing() -> None:
    assert QuietHours.parse("") is None
    assert QuietHours.parse("22:00-07:30") == QuietHours(datetime.time(22), datetime.time(7, 30))
    assert not QuietHours.parse("08:00-08:00").contains(datetime.time(8))  # type: ignore[union-attr]
    with pytest.raises(ConfigError, match="quiet_hours"):
        QuietHours.parse("10pm-7am")


def test_quiet_mode_drop(clock: Clock) -> None:
    clock = Clock("23:00")
    policy = make(clock, quiet_hours="22:00-07:00", quiet_mode="drop")
    assert policy.decide(message(clock)) == Decision("drop", "quiet hours")
    assert policy.queued == []


def test_queued_messages_are_released_after_quiet_hours_and_checked_again() -> None:
    clock = Clock("06:50")
    policy = make(clock, quiet_hours="22:00-07:00")
    short = message(clock, ttl_s=5 * 60)
    long = message(clock, SAM)
    assert policy.decide(short).action == "queue"
    assert policy.decide(long).action == "queue"
    assert policy.queued == [short, long]
    clock.advance(5 * 60)
    assert policy.release() == []  # still quiet
    clock.advance(5 * 60)
    released = policy.release()
    assert [(m.id, d.action) for m, d in released] == [(short.id, "drop"), (long.id, "speak")]
    assert released[0][1].reason == "expired during quiet hours"
    assert policy.queued == []
    assert policy.release() == []


def test_a_queued_message_can_be_cancelled() -> None:
    clock = Clock("23:00")
    policy = make(clock, quiet_hours="22:00-07:00")
    held = message(clock)
    policy.decide(held)
    assert policy.cancel(held.id)
    assert not policy.cancel(held.id)
    assert policy.queued == []


def test_release_applies_the_rate_limit() -> None:
    clock = Clock("06:50")
    policy = make(clock, quiet_hours="22:00-07:00", rate_limit=2)
    night = [message(clock) for _ in range(5)]
    assert {policy.decide(m).action for m in night} == {"queue"}
    clock.advance(600)
    actions = [d.action for _, d in policy.release()]
    assert actions == ["speak", "speak", "drop", "drop", "drop"]


def test_the_quiet_hours_queue_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(policy_module, "MAX_QUEUED", 3)
    clock = Clock("23:00")
    policy = make(clock, quiet_hours="22:00-07:00")
    decisions = [policy.decide(message(clock)).action for _ in range(5)]
    assert decisions == ["queue", "queue", "queue", "drop", "drop"]


def test_rate_limit_is_a_sliding_window(clock: Clock) -> None:
    policy = make(clock, rate_limit=3, rate_window_s=60)
    actions = []
    for _ in range(5):
        actions.append(policy.decide(message(clock)).action)
        clock.advance(10)
    assert actions == ["speak", "speak", "speak", "drop", "drop"]  # t = 0, 10, 20 | 30, 40
    clock.advance(9)  # t = 59: the first is still in the window
    assert policy.decide(message(clock)).action == "drop"
    clock.advance(1.5)  # t = 60.5: the first has left the window, the second not yet
    assert policy.decide(message(clock)).action == "speak"
    assert policy.decide(message(clock)).action == "drop"
    clock.advance(10)  # t = 70.5: the second (t = 10) has left
    assert policy.decide(message(clock)).action == "speak"


def test_dropped_messages_do_not_use_up_the_budget(clock: Clock) -> None:
    policy = make(clock, rate_limit=2, rate_window_s=60)
    for _ in range(50):
        policy.decide(message(clock))
        clock.advance(0.5)
    clock.advance(60)  # the two spoken ones are out of the window; the 48 dropped never counted
    assert policy.decide(message(clock)).action == "speak"


def test_one_neighbors_flood_does_not_starve_another(clock: Clock) -> None:
    policy = make(clock, rate_limit=4, rate_window_s=60)
    flood = [policy.decide(message(clock, MAYA)) for _ in range(500)]
    assert sum(d.action == "speak" for d in flood) == 4
    assert all(d.reason.startswith("rate limit") for d in flood[4:])
    assert [policy.decide(message(clock, SAM)).action for _ in range(4)] == ["speak"] * 4
    assert policy.decide(message(clock, SAM)).action == "drop"


def test_rules_apply_in_order(clock: Clock) -> None:
    """Mute beats quiet hours; an expired message is dropped as expired even when muted."""
    clock = Clock("23:00")
    policy = make(clock, quiet_hours="22:00-07:00", mute=("sam-4",))
    assert policy.decide(message(clock, SAM)).reason == "sam-4 is muted"
    old = message(clock, SAM, ttl_s=1)
    clock.advance(2)
    assert policy.decide(old).reason == "expired"


# -- rate-limit windows across restarts --------------------------------------------------


def restarted(clock: Clock, directory: Path, **settings: object) -> AnnouncePolicy:
    """A policy as a daemon (re)starting on ``directory`` makes it."""
    return AnnouncePolicy(
        AnnounceSettings(**settings),  # type: ignore[arg-type]
        clock=clock,
        local_time=clock.local,
        rates=RateWindows(directory),
    )


def test_rate_windows_survive_a_restart(clock: Clock, tmp_path: Path) -> None:
    """The windows are on disk as soon as an announcement is counted: the policy is simply
    dropped (as by kill -9), never closed."""
    before = restarted(clock, tmp_path, rate_limit=4, rate_window_s=60)
    assert [before.decide(message(clock)).action for _ in range(4)] == ["speak"] * 4
    clock.advance(30)
    after = restarted(clock, tmp_path, rate_limit=4, rate_window_s=60)
    assert after.decide(message(clock)).reason == "rate limit: maya-12 already had 4 in 60 s"
    assert after.decide(message(clock, SAM)).action == "speak", "another neighbor's share is untouched"
    clock.advance(30)  # the four have left the window
    assert restarted(clock, tmp_path, rate_limit=4, rate_window_s=60).decide(message(clock)).action == "speak"


def test_the_rates_file_holds_device_ids_and_times_only(clock: Clock, tmp_path: Path) -> None:
    policy = restarted(clock, tmp_path, rate_window_s=60)
    policy.decide(message(clock))
    clock.advance(61)
    policy.decide(message(clock, SAM))
    path = tmp_path / RATES_FILE
    assert json.loads(path.read_text(encoding="utf-8")) == {"v": 1, "windows": {"sam-4": [clock.now]}}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_times_from_a_clock_set_back_count_as_now(clock: Clock, tmp_path: Path) -> None:
    """A window dated ahead (the clock went back) does not silence a neighbor for longer."""
    restarted(clock, tmp_path, rate_limit=1, rate_window_s=60).decide(message(clock))
    clock.advance(-3600)
    policy = restarted(clock, tmp_path, rate_limit=1, rate_window_s=60)
    assert policy.decide(message(clock)).action == "drop"
    clock.advance(60)
    assert policy.decide(message(clock)).action == "speak"


def test_a_bad_rates_file_is_one_warning(
    clock: Clock, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / RATES_FILE).write_text('{"v": 1, "windows": {"maya-12": ["soon"]}}', encoding="utf-8")
    (tmp_path / RATES_FILE).chmod(0o600)
    with caplog.at_level(logging.WARNING):
        policy = restarted(clock, tmp_path)
    assert len(caplog.records) == 1
    assert "ignoring" in caplog.records[0].getMessage()
    assert policy.decide(message(clock)).action == "speak"
