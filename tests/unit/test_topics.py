"""Topic names: built in one place, parsed back, and hostile topics refused."""

from __future__ import annotations

import paho.mqtt.client as mqtt
import pytest

from voicehello.bus import topics
from voicehello.bus.messages import KIND_OF_INTENT
from voicehello.bus.topics import TopicParts, parse_topic


def test_topic_names() -> None:
    assert (
        topics.intent_topic("street", "kitchen-12", "borrow_item")
        == "voicehello/v1/street/kitchen-12/intent/borrow_item"
    )
    assert topics.status_topic("street", "kitchen-12") == "voicehello/v1/street/kitchen-12/status"
    assert topics.intent_subscription("street") == "voicehello/v1/street/+/intent/+"
    assert topics.status_subscription("street") == "voicehello/v1/street/+/status"
    assert (topics.ONLINE, topics.OFFLINE) == (b"online", b"offline")


@pytest.mark.parametrize("intent", sorted(KIND_OF_INTENT))
@pytest.mark.parametrize("device", ["kitchen-12", "a", "0", "k" * 32])
def test_intent_topics_parse_back(device: str, intent: str) -> None:
    topic = topics.intent_topic("street", device, intent)
    assert parse_topic(topic) == TopicParts(pod="street", device=device, kind="intent", intent=intent)


def test_status_topic_parses_back() -> None:
    assert parse_topic(topics.status_topic("my-pod", "kitchen-12")) == TopicParts(
        "my-pod", "kitchen-12", "status"
    )


def test_subscriptions_match_exactly_their_topics() -> None:
    """Checked with paho's own matcher, not ours."""
    intent = topics.intent_topic("street", "kitchen-12", "borrow_item")
    status = topics.status_topic("street", "kitchen-12")
    assert mqtt.topic_matches_sub(topics.intent_subscription("street"), intent)
    assert mqtt.topic_matches_sub(topics.status_subscription("street"), status)
    assert not mqtt.topic_matches_sub(topics.intent_subscription("street"), status)
    assert not mqtt.topic_matches_sub(topics.status_subscription("street"), intent)
    assert not mqtt.topic_matches_sub(topics.intent_subscription("other"), intent)


def test_longest_allowed_level() -> None:
    assert parse_topic(topics.intent_topic("p" * 40, "d" * 40, "i" * 40)) is not None
    assert parse_topic(topics.intent_topic("street", "d" * 41, "borrow_item")) is None


HOSTILE = [
    "",
    "/",
    "#",
    "+",
    "voicehello",
    "voicehello/v1",
    "voicehello/v1/street",
    "voicehello/v1/street/kitchen",
    "voicehello/v1/street/kitchen/intent",
    "voicehello/v1/street/kitchen/intent/",
    "voicehello/v1/street/kitchen/intent/borrow_item/extra",
    "voicehello/v1/street/kitchen/status/extra",
    "voicehello/v1/street/kitchen/status/",
    "voicehello/v1/street/kitchen/other",
    "voicehello/v1/street/kitchen/intent/borrow_item/",
    "/voicehello/v1/street/kitchen/status",
    "voicehello//v1/street/kitchen/status",
    "voicehello/v2/street/kitchen/status",
    "Voicehello/v1/street/kitchen/status",
    "hermes/intent/borrow_item",
    "$SYS/broker/uptime",
    "voicehello/v1//kitchen/status",
    "voicehello/v1/street//status",
    "voicehello/v1/street/+/intent/+",
    "voicehello/v1/street/+/status",
    "voicehello/v1/street/#",
    "voicehello/v1/street/kitchen/intent/#",
    "voicehello/v1/street/Kitchen/status",
    "voicehello/v1/street/kitchen 12/status",
    "voicehello/v1/street/kitchén/status",
    "voicehello/v1/street/../status",
    "voicehello/v1/street/-kitchen/status",
    "voicehello/v1/street/_kitchen/status",
    "voicehello/v1/street/kitchen\x00/status",
    "voicehello/v1/street/kitchen/intent/Borrow",
    "voicehello/v1/street/kitchen/intent/borrow item",
    "voicehello/v1/street/" + "k" * 10_000 + "/status",
    "voicehello/v1/street/kitchen/intent/" + "/".join(["x"] * 1000),
]


@pytest.mark.parametrize("topic", HOSTILE, ids=[repr(topic[:60]) for topic in HOSTILE])
def test_hostile_topics_are_refused(topic: str) -> None:
    assert parse_topic(topic) is None


@pytest.mark.parametrize(
    "topic", ["voicehello/v1/street/kitchen\n/status", "voicehello/v1/street/kitchen/intent/borrow_item\n"]
)
def test_a_level_with_a_trailing_newline_is_refused(topic: str) -> None:
    assert parse_topic(topic) is None
