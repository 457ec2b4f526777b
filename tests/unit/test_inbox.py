"""FairInbox: per-sender order kept, senders served in turn, bounded, closable."""

from __future__ import annotations

import threading

import pytest

from voicehello.bus.inbox import FairInbox


def drain(inbox: FairInbox[str]) -> list[str]:
    items = []
    while (item := inbox.get(timeout_s=0)) is not None:
        items.append(item)
    return items


def test_a_flood_does_not_make_others_wait_behind_it() -> None:
    inbox: FairInbox[str] = FairInbox()
    for number in range(100):
        inbox.put("maya", f"maya-{number}")
    inbox.put("lee", "lee-0")
    inbox.put("sam", "sam-0")
    inbox.put("lee", "lee-1")
    served = drain(inbox)
    assert served[:5] == ["maya-0", "lee-0", "sam-0", "maya-1", "lee-1"]
    assert [item for item in served if item.startswith("maya")] == [f"maya-{n}" for n in range(100)]
    assert len(inbox) == 0


def test_each_senders_queue_is_bounded_dropping_its_oldest() -> None:
    inbox: FairInbox[str] = FairInbox(per_sender=3)
    dropped = [inbox.put("maya", f"m{n}") for n in range(5)]
    assert dropped == [None, None, None, "m0", "m1"]
    assert inbox.put("lee", "l0") is None, "another sender's room is its own"
    assert len(inbox) == 4
    assert drain(inbox) == ["m2", "l0", "m3", "m4"]


def test_get_waits_for_an_item_and_close_wakes_it() -> None:
    inbox: FairInbox[str] = FairInbox()
    assert inbox.get(timeout_s=0.05) is None
    got: list[str | None] = []
    reader = threading.Thread(target=lambda: got.append(inbox.get()))
    reader.start()
    inbox.put("maya", "hello")
    reader.join(timeout=5)
    assert got == ["hello"]
    reader = threading.Thread(target=lambda: got.append(inbox.get()))
    reader.start()
    inbox.close()
    reader.join(timeout=5)
    assert not reader.is_alive()
    assert got == ["hello", None]
    inbox.put("maya", "late")
    assert inbox.get(timeout_s=0) is None, "a closed inbox hands out nothing"


def test_a_bound_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="per_sender"):
        FairInbox(per_sender=0)
